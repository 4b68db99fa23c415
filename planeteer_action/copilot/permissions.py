"""Planeteer's answer to every permission request of a task's session: the task's rules, and writes kept
inside its working directory.

The Copilot CLI asks the SDK client before each tool call it does not decide itself (with the SDK, that is
every shell command, file read and write, URL fetch and MCP tool call). A request is split into what it
would do (each command of a shell line, each URL a command may reach, each file a write touches...), and
each part is judged on its own: a deny pattern that matches denies it (deny wins), and with an allow list,
a part no allow pattern matches is denied too. Without an allow list, whatever is not denied is approved,
as the SDK's `approve_all` would. A denied request never runs: the agent gets the reason as the answer to its
tool call, and the engine hears a short description through `TurnRequest.on_denied`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from copilot.rpc import PermissionDecisionReject
from copilot.session import PermissionHandler, PermissionInvocation, PermissionRequestResult
from copilot.session_events import (
    PermissionRequest,
    PermissionRequestMcp,
    PermissionRequestRead,
    PermissionRequestShell,
    PermissionRequestUrl,
    PermissionRequestWrite,
)

from planeteer_action.copilot.patterns import mcp_tool_matches, path_matches, shell_matches, url_matches
from planeteer_action.engine.rules import SessionRules, ToolPattern
from planeteer_action.redaction import redact_url

_DESCRIPTION_WIDTH = 200


@dataclass(frozen=True)
class _Part:
    """One thing a request would do, judged on its own: `kind` is what patterns name (`shell`, `write`, an
    MCP server...), `matches` tells whether a pattern's argument covers it.

    `gated_when_unlisted` is False for the URLs a shell command may reach: an allow list gates them only when
    it names some `url(...)`, so that `shell(curl)` alone still allows `curl`.
    """

    kind: str
    description: str
    matches: Callable[[str | None], bool]
    gated_when_unlisted: bool = True


@dataclass(frozen=True)
class Denial:
    description: str
    """What was denied, as the engine shows it: `shell(git push origin main)`."""
    reason: str

    @property
    def message(self) -> str:
        """What the agent is told instead of the tool's result."""
        return (
            f"Planeteer denied {self.description}: {self.reason}. It did not run; do the task without it,"
            " or say in your answer that the task needs it."
        )


def judge(
    request: PermissionRequest, rules: SessionRules, working_directory: Path, own_commands: Iterable[str] = ()
) -> Denial | None:
    """The denial of `request` under `rules`, or None when it may run.

    `own_commands` are shell commands planeteer itself put in front of the agent's (the task's environment),
    which the rules do not judge.
    """
    workdir = Path(os.path.realpath(working_directory))
    parts = _parts_of(request, workdir, frozenset(own_commands))
    denials = [*_confinement(request, rules, workdir), *filter(None, (_by_rules(part, rules) for part in parts))]
    if not denials:
        return None
    return Denial(", ".join(dict.fromkeys(d.description for d in denials)), denials[0].reason)


def _parts_of(request: PermissionRequest, workdir: Path, own_commands: frozenset[str] = frozenset()) -> list[_Part]:
    """What `request` would do, part by part, in the terms patterns speak of."""
    if isinstance(request, PermissionRequestShell):
        urls = [_url_part(possible.url, gated=False) for possible in request.possible_urls]
        return [*_shell_commands(request, own_commands), *urls]
    if isinstance(request, PermissionRequestWrite):
        return [_path_part("write", path) for path in _written_paths(request, workdir)]
    if isinstance(request, PermissionRequestRead):
        return [_path_part("read", _target_path(request.path, workdir))]
    if isinstance(request, PermissionRequestUrl):
        return [_url_part(request.url)]
    if isinstance(request, PermissionRequestMcp):
        server, tool = request.server_name, request.tool_name
        registered = tool.removeprefix(f"{server}-")
        return [_Part(server, f"{server}({registered})", lambda arg: mcp_tool_matches(arg, server, tool))]
    name = getattr(request, "tool_name", None) or getattr(request, "extension_name", None)
    kind = str(request.kind)
    return [_Part(kind, f"{kind}({name})" if name else kind, lambda arg: arg is None or arg == name)]


def _shell_commands(request: PermissionRequestShell, own_commands: frozenset[str]) -> Iterator[_Part]:
    segments = [(s.identifier, s.full_command_text) for s in request.command_segments or []]
    for identifier, text in segments or [(c.identifier, c.identifier) for c in request.commands]:
        if text not in own_commands:
            yield _shell_part(identifier, text)


def _shell_part(identifier: str, text: str) -> _Part:
    return _Part("shell", f"shell({text})", lambda arg: shell_matches(arg, identifier, text))


def _url_part(url: str, gated: bool = True) -> _Part:
    return _Part("url", f"url({redact_url(url)})", lambda arg: url_matches(arg, url), gated_when_unlisted=gated)


def _path_part(kind: str, path: PurePosixPath) -> _Part:
    return _Part(kind, f"{kind}({path})", lambda arg: path_matches(arg, path))


def _target_path(path: str, workdir: Path) -> PurePosixPath:
    """Where a request's path really leads: relative to the working directory, `..` and symlinks resolved."""
    return PurePosixPath(os.path.realpath(os.path.join(workdir, os.path.expanduser(path))))


def _written_paths(request: PermissionRequestWrite, workdir: Path) -> list[PurePosixPath]:
    """Every file a write request changes: its file and both sides of each edit (a move touches two)."""
    named = [request.file_name]
    for edit in request.file_edits or []:
        named += [side.path for side in (edit.before, edit.after) if side is not None]
    return list(dict.fromkeys(_target_path(path, workdir) for path in named))


def _writable_roots(rules: SessionRules, workdir: Path) -> list[PurePosixPath]:
    """Where the task may write: its working directory and the rules' extra directories, symlinks resolved."""
    return [_target_path(str(root), workdir) for root in (workdir, *rules.writable_directories)]


def _confinement(request: PermissionRequest, rules: SessionRules, workdir: Path) -> Iterator[Denial]:
    if not isinstance(request, PermissionRequestWrite):
        return
    roots = _writable_roots(rules, workdir)
    where = f"{roots[0]}" + "".join(f", {root}" for root in roots[1:])
    for path in _written_paths(request, workdir):
        if not any(path.is_relative_to(root) for root in roots):
            reason = f"files may be written only inside the task's working directory ({where})"
            yield Denial(f"write {path} (outside the task's worktree)", reason)


def _by_rules(part: _Part, rules: SessionRules) -> Denial | None:
    for pattern in rules.deny_tools:
        if _covers(pattern, part):
            return Denial(part.description, f"the rules deny `{pattern}`")
    allowed = rules.allow_tools
    if not allowed or (not part.gated_when_unlisted and all(p.kind != part.kind for p in allowed)):
        return None
    if any(_covers(pattern, part) for pattern in allowed):
        return None
    return Denial(part.description, "no allowed-tools pattern matches it (" + ", ".join(map(str, allowed)) + ")")


def _covers(pattern: ToolPattern, part: _Part) -> bool:
    return pattern.kind == part.kind and part.matches(pattern.argument)


class PermissionPolicy:
    """The permission handler of one task's session (create and resume alike)."""

    def __init__(
        self,
        rules: SessionRules,
        working_directory: Path,
        on_denied: Callable[[str], None],
        clean: Callable[[str], str],
        own_commands: Iterable[str] = (),
    ) -> None:
        """`clean` makes a description safe to show (the turn's secrets masked)."""
        self._rules = rules
        self._workdir = working_directory
        self._on_denied = on_denied
        self._clean = clean
        self._own_commands = tuple(own_commands)

    def __call__(self, request: PermissionRequest, invocation: PermissionInvocation) -> PermissionRequestResult:
        try:
            denial = judge(request, self._rules, self._workdir, self._own_commands)
        except Exception as error:
            denial = Denial(str(request.kind), f"planeteer could not check it against the rules ({error})")
        if denial is None:
            return PermissionHandler.approve_all(request, invocation)
        description = self._clean(" ".join(denial.description.split()))
        if len(description) > _DESCRIPTION_WIDTH:
            description = description[: _DESCRIPTION_WIDTH - 1] + "…"
        self._on_denied(description)
        return PermissionDecisionReject(feedback=self._clean(denial.message))
