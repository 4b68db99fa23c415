"""Putting a checkpoint's branches and task worktrees back into a checkout: verified first, then written.

The bundles are untrusted. Before anything changes, `check_branches` makes sure that the checkout is at the
run's base commit (the first bundle's base), that `git bundle verify` accepts each bundle of the chain once
the ones before it are unpacked (its prerequisites are theirs or the base's), that every ref `git/state.json`
lists (every one of them this plan's, which `BranchState.check_names` checked) then names a commit that is
there and descends from the base commit, and that every worktree snapshot is a commit the chain carries whose
one parent is its task's tip; the snapshot becomes a patch, which must stay inside the checkout. The commits
are unpacked for these checks into a throwaway repository that borrows the checkout's objects, so a refused
chain leaves nothing behind. `put_back_branches` then unpacks the bundles into the checkout's object store,
creates the refs in one transaction and adds each worktree where the executor looks for it
(`worktrees.names.worktree_path`), with its uncommitted changes applied.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from planeteer_action.checkpoints.branches import BranchState, borrowing_repository, commit_of, create_refs, task_ref
from planeteer_action.checkpoints.errors import CheckpointInvalid
from planeteer_action.checkpoints.patch_safety import link_outside_checkout, path_outside_checkout
from planeteer_action.checkpoints.workspace import (
    WorkspaceChangesError,
    apply_changes,
    changes_between,
    first_line,
    git_bytes,
    git_result,
    head_commit,
)
from planeteer_action.worktrees import names


def check_branches(working_directory: Path, plan_id: str, base_commit: str, state: BranchState) -> dict[str, bytes]:
    """The uncommitted changes of each task worktree to put back, as patches by task id (b"" for none).

    Raise CheckpointInvalid for a bundle that must not be trusted, WorkspaceChangesError for one this
    checkout cannot take (another commit, branches of its own in the way); changes nothing."""
    root, common = _repository(working_directory)
    head = head_commit(root)
    if head != base_commit.lower():
        raise WorkspaceChangesError(
            f"this checkout is at {head} but the checkpoint's branches start from {base_commit}: "
            f"check out {base_commit} (actions/checkout with ref: {base_commit}) and re-run"
        )
    _check_in_the_way(root, common, plan_id, state)
    with tempfile.TemporaryDirectory(prefix="planeteer-quarantine-") as tmp:
        quarantine = borrowing_repository(root, Path(tmp) / "quarantine.git")
        for number, data in enumerate(state.bundles, start=1):
            bundle = Path(tmp) / f"{number}.bundle"
            bundle.write_bytes(data)
            _unpack_bundle(quarantine, bundle, number)
        _check_refs(quarantine, base_commit, state)
        return {
            task_id: _snapshot_changes(quarantine, task_id, state.refs[task_ref(plan_id, task_id)], snapshot)
            for task_id, snapshot in state.worktrees.items()
        }


def put_back_branches(
    working_directory: Path, plan_id: str, state: BranchState, changes: dict[str, bytes]
) -> list[str]:
    """Write what `check_branches` accepted: objects, refs, worktrees with their `changes`; return the refs
    created."""
    root, common = _repository(working_directory)
    with tempfile.TemporaryDirectory(prefix="planeteer-bundle-") as tmp:
        for data in state.bundles:
            bundle = Path(tmp) / "branches.bundle"
            bundle.write_bytes(data)
            git_bytes(root, "bundle", "unbundle", str(bundle))
    created = [ref for ref in state.refs if commit_of(root, ref) is None]
    create_refs(root, {ref: state.refs[ref] for ref in created})
    for task_id, patch in changes.items():
        path = names.worktree_path(common, plan_id, task_id)
        if names.ready_marker(path).exists():
            continue  # the same worktree, already here (`_check_in_the_way` allows only that)
        if (path / ".git").exists():  # an earlier restore of it that a kill interrupted: made again
            git_bytes(root, "worktree", "remove", "--force", "--force", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        git_bytes(root, "worktree", "add", "--quiet", str(path), names.task_branch(plan_id, task_id))
        apply_changes(path, state.refs[task_ref(plan_id, task_id)], patch)
        names.ready_marker(path).touch()
    return created


def _repository(working_directory: Path) -> tuple[Path, Path]:
    """The checkout's top folder and its common git dir (where the worktrees live)."""
    if not working_directory.is_dir():
        raise WorkspaceChangesError(f"{working_directory} is not a folder: pass the repository's working directory")
    root = Path(git_bytes(working_directory, "rev-parse", "--show-toplevel").decode().strip())
    common = Path(git_bytes(root, "rev-parse", "--path-format=absolute", "--git-common-dir").decode().strip())
    return root, common


def _check_in_the_way(root: Path, common: Path, plan_id: str, state: BranchState) -> None:
    """A branch of this plan that already exists here must be at the checkpoint's commit, and a worktree
    folder of an unfinished task must not hold something else: neither is overwritten."""
    for ref, commit in state.refs.items():
        here = commit_of(root, ref)
        if here is not None and here != commit:
            raise WorkspaceChangesError(
                f"this repository already has {ref.removeprefix('refs/heads/')} at {here}, not at the checkpoint's "
                f"{commit}: delete that branch (git branch -D) or start from a fresh clone, and re-run"
            )
    for task_id in state.worktrees:
        path = names.worktree_path(common, plan_id, task_id)
        ours = (path / ".git").exists() and commit_of(path, "HEAD") == state.refs[task_ref(plan_id, task_id)]
        if path.exists() and not ours:
            raise WorkspaceChangesError(
                f"{path} already exists and is not the checkpoint's worktree of task {task_id!r}: "
                "remove it (`planeteer sessions clean` or git worktree remove) and re-run"
            )


def _unpack_bundle(quarantine: Path, bundle: Path, number: int) -> None:
    """Verify one link of the chain where the links before it are unpacked, then unpack it there."""
    verify = git_result(quarantine, ["bundle", "verify", "--quiet", str(bundle)], None)
    if verify.returncode != 0:
        raise CheckpointInvalid(
            f"its branch bundle {number} does not verify here ({first_line(verify.stderr)}): refused"
        )
    unpack = git_result(quarantine, ["bundle", "unbundle", str(bundle)], None)
    if unpack.returncode != 0:
        raise CheckpointInvalid(f"its branch bundle {number} does not unpack ({first_line(unpack.stderr)}): refused")


def _check_refs(quarantine: Path, base_commit: str, state: BranchState) -> None:
    """Every ref names a commit the chain (or the checkout) holds, and descends from the base commit."""
    for ref, commit in state.refs.items():
        if commit_of(quarantine, commit) != commit:
            raise CheckpointInvalid(
                f"its git state puts {ref.removeprefix('refs/heads/')[:120]!r} at {commit}, which no bundle "
                "carries: refused"
            )
        descends = git_result(quarantine, ["merge-base", "--is-ancestor", base_commit, commit], None)
        if descends.returncode != 0:
            raise CheckpointInvalid(
                f"its branch {ref.removeprefix('refs/heads/')[:120]!r} does not descend from the base commit "
                f"{base_commit}: refused"
            )


def _snapshot_changes(quarantine: Path, task_id: str, tip: str, snapshot: str) -> bytes:
    """The patch from the task's tip to its snapshot, once the chain is known to carry the snapshot on that tip
    and the patch to stay inside the checkout."""
    if not snapshot:
        return b""
    parents = git_result(quarantine, ["rev-list", "--parents", "--max-count=1", f"{snapshot}^{{commit}}"], None)
    if parents.returncode != 0:
        raise CheckpointInvalid(
            f"the uncommitted changes of task {task_id[:80]!r} are commit {snapshot}, which no bundle carries: refused"
        )
    if parents.stdout.decode().split()[1:] != [tip]:
        raise CheckpointInvalid(
            f"the uncommitted changes of task {task_id[:80]!r} are not on its branch's tip {tip}: refused"
        )
    patch = changes_between(quarantine, tip, snapshot)
    unsafe = path_outside_checkout(patch)
    if unsafe is not None:
        raise CheckpointInvalid(
            f"the worktree changes of {task_id[:80]!r} write to {unsafe[:120]!r}, outside it: refused"
        )
    link = link_outside_checkout(patch)
    if link is not None:
        raise CheckpointInvalid(
            f"the worktree changes of {task_id[:80]!r} make the link {link[0][:120]!r} point to "
            f"{link[1][:120]!r}, outside it: refused"
        )
    return patch
