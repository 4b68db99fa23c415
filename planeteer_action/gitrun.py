"""Every git the package runs starts here, one way, so that a fix to how git is started reaches all of them.

Git runs in a session of its own, out of the terminal's process group: a Ctrl-C reaches planeteer alone,
which stops cleanly, and never a git half-way through writing an index (it would die of SIGINT and leave
`index.lock` behind). It reads nothing from planeteer's stdin, and its output is captured, never shown.

Each caller keeps its own error type and message for git's own failures; the one failure shared by all is
git not starting at all (`GitNotRun`), which a caller turns into its own error.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from planeteer_action.errors import PlaneteerError

# Lines that say what went wrong, before any progress, hint or warning line git printed first.
_ERROR_PREFIXES = ("fatal", "error", "remote:")
_MAX_LINE = 300


class GitNotRun(PlaneteerError):
    """Git could not be started (not installed, or its folder is gone) or did not finish in time."""


def run_git(
    cwd: Path,
    args: Sequence[str],
    *,
    pins: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """`git [pins] args` in `cwd`, whatever its exit code; `pins` are `-c key=value` pairs, as git takes them.

    `env` is the whole environment (None: planeteer's own); `stdin` is what git reads (None: nothing).
    """
    try:
        return subprocess.run(
            ["git", *pins, *args],
            cwd=cwd,
            env=env,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise GitNotRun(
            f"git {args[0]} did not finish within {timeout:g} s in {cwd}: check that no other git holds "
            "the repository, then run again"
        ) from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and exc.filename == "git":
            raise GitNotRun("git is not installed or not on PATH: install git") from None
        raise GitNotRun(
            f"git {args[0]} could not start in {cwd} ({exc.strerror or exc}): check that the folder exists"
        ) from None


def text(output: bytes) -> str:
    """Git's output as text; bytes that are not UTF-8 are kept as the file system keeps them in a name, so a
    path git printed names the same file again."""
    return os.fsdecode(output)


def first_line(stderr: bytes | str) -> str:
    """The line of git's error output that says what went wrong, for a one-line message: the first fatal,
    error or remote line, else the first line; at most 300 characters. Bytes that are not UTF-8 (kept by
    `text`) become U+FFFD, so that the message can be written anywhere."""
    decoded = (stderr if isinstance(stderr, bytes) else os.fsencode(stderr)).decode("utf-8", "replace")
    lines = [line.strip() for line in decoded.splitlines() if line.strip()]
    chosen = next((line for line in lines if line.lower().startswith(_ERROR_PREFIXES)), None)
    return (chosen or (lines[0] if lines else "no message from git"))[:_MAX_LINE]
