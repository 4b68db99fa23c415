"""MCP servers for the agents, in the Copilot CLI's own JSON format (`{"mcpServers": {name: {...}}}`).

Secrets stay out of the file: a `${VAR}` anywhere in a server's strings is taken from the environment when the
run starts. The expanded configuration lives only in memory, on its way to the sessions; the plan records
each server's name and a hash of its configuration *before* expansion, and every expanded value is listed so
that the action can mask it in the log. No message here ever quotes a value from the environment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planeteer_action.errors import ConfigError
from planeteer_action.rules.record import json_fingerprint

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# The server types the Copilot SDK takes (MCPStdioServerConfig, MCPHTTPServerConfig in copilot/session.py).
_TYPES = ("local", "stdio", "http", "sse")
_STRING_LISTS = ("args", "tools")
_STRING_MAPS = ("env", "headers")


@dataclass(frozen=True)
class McpServers:
    """The servers ready for the sessions (`servers`, expanded: may hold secrets) and what may be recorded."""

    servers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    hashes: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    variables: tuple[str, ...] = ()
    """The names `${VAR}` read: kept from the agents' environment, since only the servers need the values."""


def read_mcp_config(path: Path) -> dict[str, dict[str, Any]]:
    """The file's servers, checked, not expanded."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"MCP config {path}: cannot read ({reason}): pass the path of a readable JSON file") from None
    return parse_mcp_config(text, f"MCP config {path}")


def parse_mcp_config(text: str, where: str) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        place = f"{where}:{exc.lineno}:{exc.colno}"
        raise ConfigError(f"{place}: malformed JSON ({exc.msg}): fix the syntax there") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f'{where}: expected an object with "mcpServers" (the Copilot CLI\'s format): add it')
    for name, server in servers.items():
        problem = _server_problem(server)
        if problem:
            raise ConfigError(f"{where}: server {name!r}: {problem}")
    return servers


def expand(servers: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str], where: str) -> McpServers:
    """Each `${VAR}` replaced by its value from `environ`; a variable that is not set is an error naming it."""
    expanded: dict[str, Mapping[str, Any]] = {}
    secrets: list[str] = []
    variables: list[str] = []

    def value_of(match: re.Match[str], name: str) -> str:
        variable = match[1]
        if variable not in environ:
            raise ConfigError(
                f"{where}: server {name!r} uses ${{{variable}}}, which is not set: set it in the environment "
                "that starts planeteer (its value is never saved)"
            )
        secrets.append(environ[variable])
        variables.append(variable)
        return environ[variable]

    def walk(value: Any, name: str) -> Any:
        if isinstance(value, str):
            return _VARIABLE.sub(lambda match: value_of(match, name), value)
        if isinstance(value, list):
            return [walk(item, name) for item in value]
        if isinstance(value, dict):
            return {key: walk(item, name) for key, item in value.items()}
        return value

    for name, server in servers.items():
        expanded[name] = walk(server, name)
    hashes = {name: json_fingerprint(server) for name, server in servers.items()}
    return McpServers(
        expanded, hashes, tuple(dict.fromkeys(value for value in secrets if value)), tuple(dict.fromkeys(variables))
    )


def _server_problem(server: Any) -> str | None:
    if not isinstance(server, dict):
        return "expected an object with `command` (a local server) or `url` (a remote one)"
    kind = server.get("type")
    if kind is not None and kind not in _TYPES:
        return f"type {kind!r} is unknown: use one of {', '.join(_TYPES)}"
    remote = kind in ("http", "sse") or (kind is None and "url" in server)
    needed = "url" if remote else "command"
    if not isinstance(server.get(needed), str) or not server[needed]:
        return f"`{needed}` (a string) is missing: add it"
    for key in _STRING_LISTS:
        value = server.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return f"`{key}` must be an array of strings"
    for key in _STRING_MAPS:
        value = server.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
            return f"`{key}` must be an object of strings"
    return None
