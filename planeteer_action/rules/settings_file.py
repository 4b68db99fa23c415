"""`.planeteer/settings.json`: the Planeteer TUI's settings file, read for the plan-wide defaults it can hold.

The TUI writes `{"model": "..."}` there (its src/services/copilot.ts); planeteer also reads `reasoningEffort`,
`agent`, `allowTools` and `denyTools` from it. Every other key is the TUI's business and is ignored, and the
file is never written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from planeteer_action.rules.checks import settings_problems

SETTINGS_FILE = Path(".planeteer") / "settings.json"


@dataclass(frozen=True)
class RuleLayer:
    """The settings one source gives every task: the settings file or the command line (or action inputs)."""

    model: str | None = None
    reasoning_effort: str | None = None
    agent: str | None = None
    allow_tools: tuple[str, ...] = ()
    deny_tools: tuple[str, ...] = ()


def read_settings_file(working_directory: Path) -> tuple[RuleLayer, list[str]]:
    """The file's layer (empty when there is no file) and its problems, one line each."""
    path = working_directory / SETTINGS_FILE
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return RuleLayer(), []
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return RuleLayer(), [f"{where}: cannot read ({reason}): fix the file or remove it"]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return RuleLayer(), [f"{where}:{exc.lineno}:{exc.colno}: malformed JSON ({exc.msg}): fix the syntax there"]
    if not isinstance(data, dict):
        return RuleLayer(), [f'{where}: expected a JSON object such as {{"model": "gpt-5"}}']
    problems = settings_problems(data, where)
    if problems:
        return RuleLayer(), problems
    layer = RuleLayer(
        model=data.get("model"),
        reasoning_effort=data.get("reasoningEffort"),
        agent=data.get("agent"),
        allow_tools=tuple(data.get("allowTools", [])),
        deny_tools=tuple(data.get("denyTools", [])),
    )
    return layer, []
