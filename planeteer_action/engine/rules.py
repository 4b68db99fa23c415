"""What one task's agent may do and is given: the user's rules, resolved for that task.

`rules/` resolves them (the task, then the command line, then `.planeteer/settings.json`: the nearest
wins), the agent runtime enforces them on every session it opens or resumes, and the plan records them by
name and hash, never by value, so a resumed session keeps the rules it started with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_PATTERN = re.compile(r"(?P<kind>[A-Za-z0-9_.-]+)(?:\((?P<argument>[^()]*)\))?")


@dataclass(frozen=True)
class ToolPattern:
    """One allow or deny pattern in the Copilot CLI's syntax: `kind` or `kind(argument)`.

    `kind` is a tool kind (`shell`, `write`, `read`, `url`, ...) or an MCP server's name; `argument` narrows
    it (`shell(git push)`, `shell(git:*)`, an MCP server's tool).
    """

    kind: str
    argument: str | None = None

    @classmethod
    def parse(cls, text: str) -> ToolPattern:
        match = _PATTERN.fullmatch(text.strip())
        if match is None or (match["argument"] is not None and not match["argument"].strip()):
            raise ValueError(
                f"tool pattern {text!r} is not `kind` or `kind(argument)`: write e.g. `shell(git push)` or `write`"
            )
        argument = match["argument"]
        return cls(match["kind"], argument.strip() if argument is not None else None)

    def __str__(self) -> str:
        return self.kind if self.argument is None else f"{self.kind}({self.argument})"


@dataclass(frozen=True)
class SessionRules:
    """The rules one task's session runs under. The defaults are today's behaviour: everything approved,
    nothing added; only a file tool's write outside the task's working directory is denied, whatever the rules.

    `mcp_servers` holds the Copilot CLI's `mcpServers` entries with `${VAR}` already taken from the
    environment, and `env` the task's variables for its tools' shells: both may hold secrets, so neither is
    ever saved, logged or put in a checkpoint (the plan keeps names and hashes only).
    """

    model: str | None = None
    reasoning_effort: str | None = None
    allow_tools: tuple[ToolPattern, ...] = ()
    deny_tools: tuple[ToolPattern, ...] = ()
    writable_directories: tuple[Path, ...] = ()
    """Where the agent may write besides its working directory (the plan's declared extra directories)."""
    mcp_servers: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    skill_directories: tuple[Path, ...] = ()
    agent: str | None = None
    """A custom agent, by name, to run the task."""
    env: Mapping[str, str] = field(default_factory=dict)
