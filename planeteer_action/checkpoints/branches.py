"""A worktree-isolated plan's git state in a checkpoint: its branches as a chain of git bundles, and each
unfinished task's uncommitted worktree changes as a binary patch.

With worktree isolation the work is commits, so a checkpoint carries commits, not a diff of the checkout:
the integration branch and every unfinished task's branch (each ref's exact tip in `git/state.json`), their
commits as incremental bundles (each holds only the commits beyond the run's base commit and beyond the tips
the earlier bundles carried, so a finished task's commits travel once), and what each of those tasks' agents
left uncommitted in its worktree (`workspace.capture_changes` against the branch tip: binary files, modes and
untracked files included). Done tasks are merged, so their branches do not travel. What is checked here
needs no git: every ref is one of this plan's names, every worktree one of its tasks'; `branch_restore`
checks the bundles themselves and puts it all back.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from planeteer_action.checkpoints.errors import CheckpointInvalid
from planeteer_action.checkpoints.patch_safety import link_outside_checkout, path_outside_checkout
from planeteer_action.checkpoints.workspace import DEFAULT_MAX_BYTES, capture_changes, git_bytes, git_result
from planeteer_action.plan.model import Plan
from planeteer_action.plan.session_ids import task_slug
from planeteer_action.worktrees import names

GIT_STATE = "git/state.json"
GIT_BUNDLE = "git/branches.bundle"
WORKTREE_PATCHES = "git/worktrees"
_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class BranchState:
    """Refs (full name -> commit), the chain of bundles holding their commits beyond the base (each bundle's
    prerequisites are in the base or the bundles before it), and the uncommitted changes (a patch, b"" for
    none) of each unfinished task's worktree, by task id."""

    refs: Mapping[str, str]
    worktrees: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    bundles: tuple[bytes, ...] = field(default=(), repr=False)

    def members(self) -> dict[str, bytes]:
        """The checkpoint members that carry this state but for the bundles, which are pieces of their own."""
        state = {"refs": dict(self.refs), "worktrees": sorted(self.worktrees)}
        members = {GIT_STATE: json.dumps(state, indent=2, sort_keys=True).encode()}
        for task_id, patch in self.worktrees.items():
            if patch:
                members[f"{WORKTREE_PATCHES}/{task_slug(task_id)}.patch"] = patch
        return members

    @classmethod
    def from_members(cls, members: Mapping[str, bytes], bundles: tuple[bytes, ...] = ()) -> BranchState | None:
        """The state the members and the chain of bundles carry (None when they carry none), once its shape is
        right."""
        if GIT_STATE not in members:
            if bundles or any(name.startswith("git/") for name in members):
                raise CheckpointInvalid(f"checkpoint has git members but no {GIT_STATE}: it is damaged")
            return None
        try:
            state = json.loads(members[GIT_STATE])
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointInvalid(f"checkpoint's {GIT_STATE} is not valid JSON: it is damaged") from None
        refs, worktrees = (state.get("refs"), state.get("worktrees")) if isinstance(state, dict) else (None, None)
        if (
            not isinstance(refs, dict)
            or not all(isinstance(r, str) and isinstance(c, str) and _COMMIT.match(c) for r, c in refs.items())
            or not isinstance(worktrees, list)
            or not all(isinstance(t, str) for t in worktrees)
        ):
            raise CheckpointInvalid(f"checkpoint's {GIT_STATE} is malformed: it is damaged")
        patches = {task_id: members.get(f"{WORKTREE_PATCHES}/{task_slug(task_id)}.patch", b"") for task_id in worktrees}
        expected = {f"{WORKTREE_PATCHES}/{task_slug(task_id)}.patch" for task_id in worktrees}
        stray = sorted(n for n in members if n.startswith(f"{WORKTREE_PATCHES}/") and n not in expected)
        if stray:
            raise CheckpointInvalid(f"checkpoint member {stray[0][:120]!r} is no worktree of {GIT_STATE}: refused")
        return cls(refs=refs, worktrees=patches, bundles=bundles)

    def check_names(self, plan: Plan) -> None:
        """Refuse refs that are not this plan's integration or task branches, and worktrees of no task of it."""
        task_ids = {task.id for task in plan.tasks}
        allowed = {f"refs/heads/{names.integration_branch(plan.id)}"}
        allowed |= {f"refs/heads/{names.task_branch(plan.id, task_id)}" for task_id in task_ids}
        foreign = sorted(set(self.refs) - allowed)
        if foreign:
            raise CheckpointInvalid(
                f"its git state carries the ref {foreign[0][:120]!r}, which is not one of plan {plan.id!r}'s "
                "branches: refused"
            )
        for task_id, patch in self.worktrees.items():
            if task_id not in task_ids or f"refs/heads/{names.task_branch(plan.id, task_id)}" not in self.refs:
                raise CheckpointInvalid(f"its git state has a worktree for {task_id[:80]!r}, no task of it: refused")
            unsafe = path_outside_checkout(patch)
            if unsafe is not None:
                raise CheckpointInvalid(
                    f"the worktree patch of {task_id[:80]!r} writes to {unsafe[:120]!r}, outside it: refused"
                )
            link = link_outside_checkout(patch)
            if link is not None:
                raise CheckpointInvalid(
                    f"the worktree patch of {task_id[:80]!r} makes the link {link[0][:120]!r} point to "
                    f"{link[1][:120]!r}, outside it: refused"
                )


def capture_branches(
    working_directory: Path,
    plan: Plan,
    base_commit: str,
    *,
    carried: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> BranchState:
    """The plan's integration branch and unfinished tasks' branches and worktree changes, as they are now; the
    one bundle in it holds only the commits beyond the base and the `carried` commits (earlier bundles')."""
    root = Path(git_bytes(working_directory, "rev-parse", "--show-toplevel").decode().strip())
    common = Path(git_bytes(root, "rev-parse", "--path-format=absolute", "--git-common-dir").decode().strip())
    refs: dict[str, str] = {}
    integration = f"refs/heads/{names.integration_branch(plan.id)}"
    tip = _tip(root, integration)
    if tip is not None:
        refs[integration] = tip
    unfinished = [task.id for task in plan.tasks if task.status != "done"]
    for task_id in unfinished:
        ref = f"refs/heads/{names.task_branch(plan.id, task_id)}"
        tip = _tip(root, ref)
        if tip is not None:
            refs[ref] = tip
    bundle, heads = _bundle(root, refs, [base_commit, *carried])
    refs |= heads  # a branch that moved since it was read travels as the bundle holds it
    worktrees: dict[str, bytes] = {}
    for task_id in unfinished:
        ref = f"refs/heads/{names.task_branch(plan.id, task_id)}"
        path = names.worktree_path(common, plan.id, task_id)
        if ref in refs and (path / ".git").exists():
            worktrees[task_id] = capture_changes(path, refs[ref], [], max_bytes=max_bytes)
    return BranchState(refs=refs, worktrees=worktrees, bundles=(bundle,) if bundle else ())


def _tip(root: Path, ref: str) -> str | None:
    result = git_result(root, ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], None)
    return result.stdout.decode().strip() if result.returncode == 0 else None


def _bundle(root: Path, refs: Mapping[str, str], known: list[str]) -> tuple[bytes, dict[str, str]]:
    """A bundle of the refs' commits that the `known` commits do not reach, and the tips it holds; (b"", {})
    when there are none (git refuses an empty bundle)."""
    known = [commit for commit in dict.fromkeys(known) if _exists(root, commit)]
    beyond = [ref for ref in refs if git_bytes(root, "rev-list", "--count", ref, "--not", *known).strip() != b"0"]
    if not beyond:
        return b"", {}
    with tempfile.TemporaryDirectory(prefix="planeteer-bundle-") as tmp:
        bundle = Path(tmp) / "branches.bundle"
        git_bytes(root, "bundle", "create", "--quiet", str(bundle), *beyond, "--not", *known)
        return bundle.read_bytes(), bundle_heads(root, bundle)


def _exists(root: Path, commit: str) -> bool:
    return git_result(root, ["cat-file", "-e", f"{commit}^{{commit}}"], None).returncode == 0


def bundle_heads(cwd: Path, bundle: Path) -> dict[str, str]:
    """The refs a bundle file names, and their commits."""
    heads: dict[str, str] = {}
    for line in git_bytes(cwd, "bundle", "list-heads", str(bundle)).decode("utf-8", "replace").splitlines():
        commit, _, ref = line.partition(" ")
        heads[ref] = commit
    return heads
