"""The working tree's changes since a commit, as one binary-safe patch that another checkout can apply.

A re-run in GitHub Actions starts from a fresh checkout of the same commit, which lacks the files the
finished tasks changed. `capture_changes` turns those changes (edits, deletions, new untracked files that
are not ignored, mode changes) into a `git diff --binary` patch against the base commit; `apply_changes`
puts them back on a checkout at that commit. Whether a patch from an untrusted checkpoint stays inside
the checkout is `patch_safety`'s question.

A task worktree's changes travel as a commit instead (`snapshot_commit`): its tree shares every blob with
the commit the task makes later, so a git bundle carries each file once, however often a checkpoint catches
the task at work; `changes_between` turns such a commit back into a patch that is checked and applied here.

Capturing stages the working tree into a temporary index, so the person's own index (what they staged) is
never touched; only blobs (and a snapshot's tree and commit) are added to the object store, which is
harmless. Applying checks first and changes nothing when it refuses. Submodule pointers do not travel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from planeteer_action import gitrun
from planeteer_action.errors import PlaneteerError

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
_ADD_TRIES = 3
_PINNED_IDENTITY = (("NAME", "planeteer"), ("EMAIL", "planeteer@localhost"), ("DATE", "1970-01-01T00:00:00Z"))

# Flags that pin what a patch looks like, whatever the repository's or user's git config says.
_DIFF_FLAGS = (
    "-p",
    "--binary",
    "--no-renames",
    "--no-ext-diff",
    "--no-textconv",
    "--ignore-submodules=all",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)
_PINNED_CONFIG = (
    "-c",
    "diff.suppressBlankEmpty=false",
    "-c",
    "core.quotePath=true",
    "-c",
    "apply.whitespace=nowarn",
)


class WorkspaceChangesError(PlaneteerError):
    """The working tree's changes cannot be captured or applied. Nothing was changed."""


def head_commit(repo_dir: Path) -> str:
    """The full id of the commit checked out in the repository that holds `repo_dir`."""
    result = git_result(repo_dir, ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], None)
    if result.returncode != 0:
        raise WorkspaceChangesError(
            f"{repo_dir} has no commit checked out: check out the repository (actions/checkout) first"
        )
    return result.stdout.decode().strip()


def capture_changes(
    repo_dir: Path, base_commit: str, exclude: Sequence[Path], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> bytes:
    """A patch from `base_commit` to the whole working tree, or b"" when nothing changed.

    `exclude` lists files or folders (absolute, or relative to `repo_dir`) that must not travel, such as
    the plan file, its Markdown view and lock, or a Copilot home inside the repository; the temporary files
    an atomic save of an excluded file leaves beside it (`.<name>.*.tmp`) stay out too.
    """
    root = _toplevel(repo_dir)
    with tempfile.TemporaryDirectory(prefix="planeteer-index-") as tmp:
        env = _stage_working_tree(root, base_commit, _exclusions(root, repo_dir, exclude), Path(tmp))
        patch_file = Path(tmp) / "changes.patch"
        git_bytes(root, "diff-index", "--cached", *_DIFF_FLAGS, f"--output={patch_file}", base_commit, env=env)
        size = patch_file.stat().st_size
        if size > max_bytes:
            raise WorkspaceChangesError(
                f"the working tree's changes make a {_mb(size)} patch, over the {_mb(max_bytes)} cap: "
                "add build outputs and other large files to .gitignore"
            )
        return patch_file.read_bytes()


def snapshot_commit(worktree: Path, tip: str) -> str | None:
    """A commit of the worktree as it is now (untracked files that are not ignored included), whose one
    parent is `tip`; None when the worktree holds nothing beyond `tip`. The same changes always make the same
    commit (a fixed author, date and message), so an unchanged worktree adds nothing to the next bundle."""
    root = _toplevel(worktree)
    with tempfile.TemporaryDirectory(prefix="planeteer-index-") as tmp:
        env = _stage_working_tree(root, tip, [":(top)"], Path(tmp))
        tree = git_bytes(root, "write-tree", env=env).decode().strip()
    if tree == git_bytes(root, "rev-parse", f"{tip}^{{tree}}").decode().strip():
        return None
    return pinned_commit(root, tree, [tip], "planeteer: the task's uncommitted work, as a checkpoint carries it")


def pinned_commit(repo_dir: Path, tree: str, parents: Sequence[str], message: str) -> str:
    """A commit of `tree` on `parents` made by planeteer at a fixed date: the same arguments make the same
    commit, whoever runs it (a runner may have no git identity configured at all)."""
    pinned = {
        **os.environ,
        **{f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER") for what, value in _PINNED_IDENTITY},
    }
    parent_args = [arg for parent in parents for arg in ("-p", parent)]
    commit = git_bytes(
        repo_dir, "commit-tree", "--no-gpg-sign", tree, *parent_args, env=pinned, stdin=f"{message}\n".encode()
    )
    return commit.decode().strip()


def changes_between(repo_dir: Path, old: str, new: str) -> bytes:
    """The patch from commit `old` to commit `new`, as `capture_changes` would have made it."""
    return git_bytes(repo_dir, "diff-tree", "-r", *_DIFF_FLAGS, old, new)


def check_changes(repo_dir: Path, base_commit: str, patch: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Raise unless HEAD is `base_commit` and the whole patch applies cleanly; changes nothing."""
    root = _toplevel(repo_dir)
    head = head_commit(root)
    if head != base_commit.lower():
        raise WorkspaceChangesError(
            f"this checkout is at {head} but the checkpoint's work was made on {base_commit}: "
            f"check out {base_commit} (actions/checkout with ref: {base_commit}) and re-run"
        )
    if not patch:
        return
    if len(patch) > max_bytes:
        raise WorkspaceChangesError(
            f"the checkpoint's workspace patch is {_mb(len(patch))}, over the {_mb(max_bytes)} cap: "
            "raise the cap or start the plan afresh"
        )
    check = git_result(root, ["apply", "--check", "--binary", "-"], None, stdin=patch)
    if check.returncode != 0:
        raise WorkspaceChangesError(
            "the checkpoint's workspace changes do not apply to this checkout "
            f"({first_line(check.stderr)}): start from a clean checkout of the same commit and re-run"
        )


def apply_changes(repo_dir: Path, base_commit: str, patch: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[str]:
    """Apply a patch from `capture_changes` to the working tree; return the changed paths (from the git root).

    Refuses, changing nothing, unless `check_changes` passes.
    """
    check_changes(repo_dir, base_commit, patch, max_bytes=max_bytes)
    if not patch:
        return []
    root = _toplevel(repo_dir)
    listing = git_bytes(root, "apply", "--numstat", "-z", "--binary", "-", stdin=patch)
    git_bytes(root, "apply", "--binary", "-", stdin=patch)
    return [entry.split(b"\t", 2)[2].decode("utf-8", "surrogateescape") for entry in listing.split(b"\0") if entry]


def _exclusions(root: Path, repo_dir: Path, exclude: Sequence[Path]) -> list[str]:
    """The pathspecs that stage the whole working tree but `exclude` and its atomic saves' temporary files."""
    pathspecs = [":(top)"]
    for rel in _relative_paths(root, repo_dir, exclude):
        folder, _, name = rel.rpartition("/")
        pathspecs.append(f":(top,exclude,literal){rel}")
        pathspecs.append(f":(top,exclude,glob){folder + '/' if folder else ''}.{_glob_escape(name)}.*.tmp")
    return pathspecs


def _stage_working_tree(root: Path, base: str, pathspecs: list[str], tmp: Path) -> dict[str, str]:
    """The environment of a temporary index in `tmp` that holds `base` with the working tree staged on it."""
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp / "index")}
    real_index = Path(git_bytes(root, "rev-parse", "--path-format=absolute", "--git-path", "index").decode().strip())
    if real_index.is_file():
        # A copy keeps the stat cache, so unchanged files are not hashed again.
        shutil.copyfile(real_index, env["GIT_INDEX_FILE"])
        merged = git_result(root, ["read-tree", "-m", base], env).returncode == 0
    else:
        merged = False
    if not merged:
        git_bytes(root, "read-tree", base, env=env)
    _add_all(root, pathspecs, env)
    return env


def _add_all(root: Path, pathspecs: list[str], env: dict[str, str]) -> None:
    """Stage the working tree into the temporary index; agents may be changing it meanwhile.

    A file that vanishes between git's listing and its read fails the whole `git add`; the next try no
    longer sees it.
    """
    for attempt in range(1, _ADD_TRIES + 1):
        result = git_result(root, ["add", "--all", "--", *pathspecs], env)
        if result.returncode == 0:
            return
        if attempt == _ADD_TRIES:
            raise WorkspaceChangesError(
                f"cannot read the working tree's changes ({first_line(result.stderr)}): run again"
            )
        time.sleep(0.2 * attempt)


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]\\" else c for c in name)


def _toplevel(repo_dir: Path) -> Path:
    if not repo_dir.is_dir():
        raise WorkspaceChangesError(f"{repo_dir} is not a folder: pass the repository's working directory")
    return Path(git_bytes(repo_dir, "rev-parse", "--show-toplevel").decode().strip())


def _relative_paths(root: Path, repo_dir: Path, paths: Sequence[Path]) -> list[str]:
    """Paths inside the repository, relative to its root; paths outside it cannot be in a patch anyway."""
    result = []
    for path in paths:
        absolute = path if path.is_absolute() else repo_dir / path
        # Resolve the folder, not the last part: an excluded symlink is excluded as itself.
        absolute = absolute.parent.resolve() / absolute.name
        try:
            relative = absolute.relative_to(root.resolve())
        except ValueError:
            continue
        if relative.parts:
            result.append(relative.as_posix())
    return result


def git_bytes(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> bytes:
    """git's stdout; a failure raises WorkspaceChangesError naming the command and git's reason."""
    result = git_result(cwd, list(args), env, stdin=stdin)
    if result.returncode != 0:
        raise WorkspaceChangesError(
            f"git {args[0]} failed in {cwd}: {first_line(result.stderr)}: check that it is a healthy git checkout"
        )
    return result.stdout


def git_result(
    cwd: Path, args: list[str], env: dict[str, str] | None, *, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """git run with the pinned config that keeps patches alike whatever the user's config says."""
    try:
        return gitrun.run_git(cwd, args, pins=_PINNED_CONFIG, env=env, stdin=stdin)
    except gitrun.GitNotRun as exc:
        raise WorkspaceChangesError(str(exc)) from None


def first_line(stderr: bytes) -> str:
    """The line of git's error output that says what went wrong, for a one-line message."""
    return gitrun.first_line(stderr)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
