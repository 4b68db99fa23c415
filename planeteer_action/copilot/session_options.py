"""The settings a task's session is opened with, created or resumed alike: its model, reasoning effort, MCP
servers, skills and custom agent from its rules, and planeteer's permission handler and hooks.

Resuming must be given them all again: the CLI does not keep a session's settings between processes, so a
resumed session runs under what it is resumed with (the rules the plan recorded for it).

What the SDK, in its default mode, does not discover by itself (measured on CLI 1.0.102): skills and custom
agents in the repository's `.github/skills/` and `.github/agents/`, and MCP servers of the user's Copilot
configuration. So a skill reaches a session only when its folder is among `skill_directories`, and a custom
agent is looked up in the `.github/agents/` folders from the working directory up to its repository's root.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from copilot.session import ProviderConfig, ReasoningEffort, SessionHooks
from copilot.session_events import SessionEvent

from planeteer_action.copilot.permissions import PermissionPolicy
from planeteer_action.engine.agent import AgentError, TurnRequest

_UNKNOWN_AGENT = re.compile(r"\bcustom agent '.*' not found\b", re.IGNORECASE)


def session_options(
    request: TurnRequest,
    *,
    model: str | None,
    provider: ProviderConfig | None,
    permissions: PermissionPolicy,
    on_event: Callable[[SessionEvent], None],
    hooks: SessionHooks | None,
) -> dict[str, Any]:
    """Keyword arguments for `create_session` and `resume_session`; `model` is the run's default model."""
    rules = request.rules
    options: dict[str, Any] = {
        "model": rules.model or model,
        "provider": provider,
        "working_directory": str(request.working_directory),
        "on_permission_request": permissions,
        "on_event": on_event,
    }
    if rules.reasoning_effort:
        options["reasoning_effort"] = cast(ReasoningEffort, rules.reasoning_effort)
    if rules.mcp_servers:
        options["mcp_servers"] = {name: dict(server) for name, server in rules.mcp_servers.items()}
    if rules.skill_directories:
        options["skill_directories"] = [str(folder) for folder in rules.skill_directories]
    if rules.agent:
        options["agent"] = rules.agent
        options["agent_directories"] = [str(folder) for folder in agent_directories(request.working_directory)]
    if hooks:
        options["hooks"] = hooks
    return options


def agent_directories(working_directory: Path) -> list[Path]:
    """The `.github/agents` folders from `working_directory` up to its repository's root, nearest first."""
    found = []
    for folder in (working_directory, *working_directory.parents):
        if (folder / ".github" / "agents").is_dir():
            found.append(folder / ".github" / "agents")
        if (folder / ".git").exists():
            break
    return found


def secrets_of(request: TurnRequest) -> list[str]:
    """The values of a turn's rules that may be secrets, to mask wherever the turn's text is shown: the task's
    environment and every MCP server's `env` and `headers` values."""
    values = list(request.rules.env.values())
    for server in request.rules.mcp_servers.values():
        for key in ("env", "headers"):
            table = server.get(key)
            if isinstance(table, dict):
                values += [str(value) for value in table.values()]
    return values


def raise_if_unknown_agent(request: TurnRequest, options: Mapping[str, Any], error: Exception) -> None:
    """Turn the CLI's "Custom agent 'x' not found", when opening a session failed with it, into what to do."""
    agent = request.rules.agent
    if agent and _UNKNOWN_AGENT.search(str(error)):
        folders = ", ".join(options.get("agent_directories") or []) or "no .github/agents folder"
        raise AgentError(
            f"Session {request.session_id}: the custom agent {agent!r} was not found (looked in {folders});"
            f" add .github/agents/{agent}.agent.md to the repository or change the task's agent"
        ) from None
