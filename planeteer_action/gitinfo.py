"""The repository and branch of a working directory, as the Copilot CLI records them on its sessions.

The CLI takes the repository from any GitHub remote (ssh or https) as `owner/repo`, and the branch name
(or `detached@<sha>`); recovery filters `list_sessions` by exactly these values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from planeteer_action import gitrun

_GITHUB_REMOTE = re.compile(
    r"^(?:https?://(?:[^@/]+@)?github\.com/|ssh://git@github\.com/|git@github\.com:)"
    r"(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$"
)


@dataclass(frozen=True)
class GitContext:
    root: Path | None
    repository: str | None
    branch: str | None
    head: str | None


def git(cwd: Path, *args: str) -> str | None:
    """Run git and return its stripped output, or None when git fails or is missing."""
    try:
        done = gitrun.run_git(cwd, args, timeout=30)
    except gitrun.GitNotRun:
        return None
    return gitrun.text(done.stdout).strip() if done.returncode == 0 else None


def repository_from_remote(url: str) -> str | None:
    match = _GITHUB_REMOTE.match(url.strip())
    return match.group("repo") if match else None


def git_context(cwd: Path) -> GitContext:
    root = git(cwd, "rev-parse", "--show-toplevel")
    if root is None:
        return GitContext(root=None, repository=None, branch=None, head=None)
    repository = None
    remotes = git(cwd, "remote") or ""
    names = remotes.split()
    # origin first, as people expect; then any other GitHub remote.
    for name in sorted(names, key=lambda n: n != "origin"):
        url = git(cwd, "remote", "get-url", name)
        repository = repository_from_remote(url) if url else None
        if repository:
            break
    head = git(cwd, "rev-parse", "HEAD")
    branch = git(cwd, "symbolic-ref", "--quiet", "--short", "HEAD")
    if branch is None and head:
        branch = f"detached@{head}"
    return GitContext(root=Path(root), repository=repository, branch=branch, head=head)
