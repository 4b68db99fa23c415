"""Giving one task's shell commands variables of their own, when one Copilot CLI process runs every task.

The CLI's shell tool starts each command in a fresh process with the CLI's environment, which all sessions
share, and the SDK has no per-session environment. What it has is a pre-tool-use hook, called for each tool
call of the session that registered it, whose `modifiedArgs` replace the call's arguments (measured on CLI
1.0.102: the command that runs, and the one the permission request shows, is the modified one). So each
`bash` command of the task's session is prefixed with `. FILE`, where FILE holds `export NAME='value'` lines.

The values never appear in a command, the session's events or its transcript: only the file's path does.
The file is private to planeteer's user (0600, in planeteer's own 0700 temporary directory), exists only
while the turn runs, and is deleted when it ends. It is written anew before each command, so a command that
changes it (a way to run what the rules would deny, unjudged, before every later command) changes nothing
the next command sees. Other tasks' commands run as the same user, so one that looks for the file can read
it while the turn runs: the variables are kept out of other tasks' environments, not out of reach of a
determined agent.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from copilot.session import PreToolUseHookInput, PreToolUseHookOutput, SessionHooks

from planeteer_action.engine.agent import AgentError

SHELL_TOOL = "bash"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TaskEnvironment:
    """The variables of one task's shells for one turn; a context manager that writes and removes their file."""

    def __init__(self, directory: Path, variables: Mapping[str, str]) -> None:
        """`directory` must be private to this process (e.g. from tempfile.mkdtemp)."""
        wrong = [name for name in variables if not _NAME.fullmatch(name)]
        if wrong:
            raise AgentError(
                f"The task's environment variable name {wrong[0]!r} is not a shell variable name;"
                " use letters, digits and underscores, not starting with a digit"
            )
        self._variables = dict(variables)
        self._text = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())
        self._path = directory / f"env-{uuid.uuid4().hex}.sh"
        self._active = False
        self.command = f". {shlex.quote(str(self._path))}"
        """The command put in front of each of the task's shell commands; the permission handler skips it."""

    def __enter__(self) -> TaskEnvironment:
        if self._variables:
            self._write()
            self._active = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._active = False
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    def _write(self) -> None:
        """Write the file whole under a new name, then put it in place: whatever was there is replaced."""
        temporary = self._path.with_name(f"{self._path.name}.{uuid.uuid4().hex}")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(self._text)
            os.replace(temporary, self._path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()

    def hooks(self) -> SessionHooks | None:
        """The session hooks that give the task's shell commands its variables; None when it has none."""
        return {"on_pre_tool_use": self._prefix_shell_command} if self._variables else None

    def own_commands(self) -> tuple[str, ...]:
        return (self.command,) if self._variables else ()

    def _prefix_shell_command(self, hook: PreToolUseHookInput, context: dict[str, str]) -> PreToolUseHookOutput | None:
        arguments = hook.get("toolArgs")
        if hook.get("toolName") != SHELL_TOOL or not isinstance(arguments, dict):
            return None
        command = arguments.get("command")
        if not isinstance(command, str) or not self._active:
            return None
        try:
            self._write()
        except OSError as error:
            reason = f"planeteer could not write the task's environment variables ({error.strerror}); try again"
            return {"permissionDecision": "deny", "permissionDecisionReason": reason}
        return {"modifiedArgs": {**arguments, "command": f"{self.command}\n{command}"}}
