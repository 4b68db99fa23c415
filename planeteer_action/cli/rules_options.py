"""The agent-rule options `run`, `validate` and `doctor` share, so that each reads the rules as a run would."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from planeteer_action.rules.checks import REASONING_EFFORTS
from planeteer_action.rules.resolve import RuleOptions
from planeteer_action.rules.settings_file import RuleLayer

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option(
        "--allow-tool",
        "allow_tools",
        multiple=True,
        metavar="PATTERN",
        help="Let the agents use this tool without asking, in the Copilot CLI's syntax: `shell(npm test)`, "
        "`shell(git:*)`, `write`, an MCP server's name or `server(tool)`. Repeatable; a deny wins.",
    ),
    click.option(
        "--deny-tool",
        "deny_tools",
        multiple=True,
        metavar="PATTERN",
        help="Refuse this tool to the agents (the request never runs; its agent is told): e.g. `shell(git push)`, "
        "`write(.github/workflows/**)`. Repeatable; wins over every allow.",
    ),
    click.option(
        "--mcp-config",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        envvar="PLANETEER_MCP_CONFIG",
        help='MCP servers for every agent, in the Copilot CLI\'s JSON format ({"mcpServers": {...}}); '
        "${VAR} in it is read from the environment and never saved. Env: PLANETEER_MCP_CONFIG.",
    ),
    click.option(
        "--skills-dir",
        "skills_dirs",
        multiple=True,
        type=click.Path(path_type=Path, file_okay=False, exists=True),
        help="Another folder of skill folders (after .github/skills/) where the plan's enabled skills are found. "
        "Repeatable.",
    ),
    click.option(
        "--add-dir",
        "writable_dirs",
        multiple=True,
        type=click.Path(path_type=Path, file_okay=False, exists=True),
        help="A folder the agents' file tools may write to besides their task's worktree (writes elsewhere are "
        "denied). Repeatable.",
    ),
    click.option(
        "--reasoning-effort",
        type=click.Choice(REASONING_EFFORTS),
        envvar="PLANETEER_REASONING_EFFORT",
        help="Reasoning effort for every task that sets none. Env: PLANETEER_REASONING_EFFORT.",
    ),
)


def rule_options(command: F) -> F:
    """Add the agent-rule options to a command, which receives them as one `rules: RuleOptions` argument."""

    @functools.wraps(command)
    def with_rules(
        *args: Any,
        allow_tools: tuple[str, ...],
        deny_tools: tuple[str, ...],
        mcp_config: Path | None,
        skills_dirs: tuple[Path, ...],
        writable_dirs: tuple[Path, ...],
        reasoning_effort: str | None,
        **kwargs: Any,
    ) -> Any:
        rules = _rules_from(allow_tools, deny_tools, mcp_config, skills_dirs, writable_dirs, reasoning_effort)
        return command(*args, rules=rules, **kwargs)

    wrapped: Any = with_rules
    for option in reversed(_OPTIONS):
        wrapped = option(wrapped)
    return wrapped  # type: ignore[no-any-return]


def _rules_from(
    allow_tools: tuple[str, ...],
    deny_tools: tuple[str, ...],
    mcp_config: Path | None,
    skills_dirs: tuple[Path, ...],
    writable_dirs: tuple[Path, ...],
    reasoning_effort: str | None,
) -> RuleOptions:
    layer = RuleLayer(reasoning_effort=reasoning_effort, allow_tools=allow_tools, deny_tools=deny_tools)
    return RuleOptions(
        layer=layer,
        mcp_config=mcp_config.resolve() if mcp_config else None,
        skills_dirs=tuple(path.resolve() for path in skills_dirs),
        writable_dirs=tuple(path.resolve() for path in writable_dirs),
    )
