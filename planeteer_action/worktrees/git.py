"""Running git for the worktree layer: one line of error naming the command and git's own reason.

Planeteer's own commits never wait for a signing key, and work in a repository with no identity
configured (a fresh CI checkout): the user's identity is used when there is one.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from planeteer_action.errors import EXIT_TASKS_FAILED, PlaneteerError

_FALLBACK_IDENTITY = {"user.name": "Planeteer", "user.email": "planeteer@localhost"}


class GitFailed(PlaneteerError):
    """A git command the worktree layer needed failed; the run cannot keep its promise for that task."""

    exit_code = EXIT_TASKS_FAILED


def run_git(cwd: Path, *args: str, ok_codes: tuple[int, ...] = (0,)) -> tuple[int, str]:
    """(exit code, stdout without the trailing newline); any code outside `ok_codes` raises GitFailed."""
    try:
        done = subprocess.run(
            ["git", "-c", "commit.gpgsign=false", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            stdin=subprocess.DEVNULL,
            # Out of the terminal's process group: a Ctrl-C stops planeteer cleanly, never a git half-way
            # through writing an index (it would die with -2 and leave index.lock behind).
            start_new_session=True,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitFailed(f"git {args[0]} could not run in {cwd}: {exc}; check that git is installed") from None
    if done.returncode not in ok_codes:
        reason = next((line for line in done.stderr.splitlines() if line.strip()), f"exit {done.returncode}")
        raise GitFailed(f"git {' '.join(args[:2])} failed in {cwd}: {reason.strip()}")
    return done.returncode, done.stdout.rstrip("\n")


def git_out(cwd: Path, *args: str) -> str:
    return run_git(cwd, *args)[1]


def identity_args(cwd: Path) -> list[str]:
    """`-c user.name=... -c user.email=...` for whichever of the two the repository does not configure."""
    args: list[str] = []
    for key, fallback in _FALLBACK_IDENTITY.items():
        code, _ = run_git(cwd, "config", "--get", key, ok_codes=(0, 1))
        if code != 0:
            args += ["-c", f"{key}={fallback}"]
    return args
