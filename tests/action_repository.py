"""The repository a job checks out: a plan committed on `main`, and the clone actions/checkout leaves."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helpers import git

REPOSITORY = "octo-org/planeteer"


def make_origin(path: Path, plan: Mapping[str, Any], plan_path: str, files: Mapping[str, str] = {}) -> str:
    """A repository holding the plan (and `files`) in one commit on `main`; returns the commit id."""
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    target = path / plan_path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(plan, indent=2) + "\n", encoding="utf-8")
    for name, text in {"README.md": "# test repository\n", **files}.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text, encoding="utf-8")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "Add the plan")
    return git(path, "rev-parse", "HEAD")


def checkout(origin: Path, sha: str, dest: Path) -> Path:
    """What actions/checkout leaves: a fresh clone at `sha` on branch main, its origin on github.com."""
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(origin), str(dest)], check=True, capture_output=True)
    git(dest, "checkout", "--quiet", "-B", "main", sha)
    git(dest, "remote", "set-url", "origin", f"https://github.com/{REPOSITORY}.git")
    return dest
