"""Running git for the worktree layer: one line of error naming the command and git's own reason.

Planeteer's own commits never wait for a signing key, and work in a repository with no identity
configured (a fresh CI checkout): the user's identity is used when there is one.
"""

from __future__ import annotations

from pathlib import Path

from planeteer_action import gitrun
from planeteer_action.errors import EXIT_TASKS_FAILED, PlaneteerError

_NO_SIGNING = ("-c", "commit.gpgsign=false")
_FALLBACK_IDENTITY = {"user.name": "Planeteer", "user.email": "planeteer@localhost"}


class GitFailed(PlaneteerError):
    """A git command the worktree layer needed failed; the run cannot keep its promise for that task."""

    exit_code = EXIT_TASKS_FAILED


def run_git(cwd: Path, *args: str, ok_codes: tuple[int, ...] = (0,)) -> tuple[int, str]:
    """(exit code, stdout without the trailing newline); any code outside `ok_codes` raises GitFailed."""
    try:
        done = gitrun.run_git(cwd, args, pins=_NO_SIGNING, timeout=300)
    except gitrun.GitNotRun as exc:
        raise GitFailed(str(exc)) from None
    if done.returncode not in ok_codes:
        raise GitFailed(f"git {' '.join(args[:2])} failed in {cwd}: {gitrun.first_line(done.stderr)}")
    return done.returncode, gitrun.text(done.stdout).rstrip("\n")


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
