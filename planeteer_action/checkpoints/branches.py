"""A worktree-isolated plan's git state in a checkpoint: its branches, and each unfinished task's uncommitted
worktree changes as a snapshot commit, all carried by a chain of git bundles.

With worktree isolation the work is commits, so a checkpoint carries commits, not a diff of the checkout:
the integration branch and every unfinished task's branch (each ref's exact tip in `git/state.json`), and
what each of those tasks' agents left uncommitted in its worktree, as a commit on the task's tip
(`workspace.snapshot_commit`: binary files, modes and untracked files included). Each bundle holds only the
commits beyond the run's base commit and beyond every commit the earlier bundles carried, snapshots included,
so a file travels once: a later snapshot, or the task's own commit, shares its blob and leaves it out. Done
tasks are merged, so their branches do not travel. What is checked here needs no git: every ref is one of
this plan's names, every worktree one of its tasks'; `branch_restore` checks the bundles themselves, turns
each snapshot back into a patch that must stay inside the checkout, and puts it all back.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from planeteer_action.checkpoints.errors import CheckpointInvalid
from planeteer_action.checkpoints.workspace import git_bytes, git_result, pinned_commit, snapshot_commit
from planeteer_action.plan.model import Plan
from planeteer_action.plan.session_ids import task_slug
from planeteer_action.worktrees import names

GIT_STATE = "git/state.json"
GIT_BUNDLE = "git/branches.bundle"
_CARRIER = "refs/carrier"  # a bundle's head that only marks what its receiver has (`_bundle`)
_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class BranchState:
    """Refs (full name -> commit), the snapshot commit of each unfinished task's worktree by task id ("" when
    it holds nothing uncommitted; its one parent is the task branch's tip), and the chain of bundles holding
    both beyond the base (each bundle's prerequisites are in the base or the bundles before it)."""

    refs: Mapping[str, str]
    worktrees: Mapping[str, str] = field(default_factory=dict)
    bundles: tuple[bytes, ...] = field(default=(), repr=False)

    def members(self) -> dict[str, bytes]:
        """The checkpoint member that carries this state but for the bundles, which are pieces of their own."""
        state = {"refs": dict(self.refs), "worktrees": dict(self.worktrees)}
        return {GIT_STATE: json.dumps(state, indent=2, sort_keys=True).encode()}

    def commits(self) -> list[str]:
        """Every commit the bundles carry as a tip (the refs' and the snapshots'), which later bundles leave out."""
        return sorted({*self.refs.values(), *(commit for commit in self.worktrees.values() if commit)})

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
            or not isinstance(worktrees, dict)
            or not all(isinstance(c, str) and (c == "" or _COMMIT.match(c)) for c in worktrees.values())
        ):
            raise CheckpointInvalid(f"checkpoint's {GIT_STATE} is malformed: it is damaged")
        return cls(refs=refs, worktrees=worktrees, bundles=bundles)

    def check_names(self, plan: Plan) -> None:
        """Refuse refs that are not this plan's integration or task branches, and worktrees of no task of it."""
        task_ids = {task.id for task in plan.tasks}
        allowed = {f"refs/heads/{names.integration_branch(plan.id)}"}
        allowed |= {task_ref(plan.id, task_id) for task_id in task_ids}
        foreign = sorted(set(self.refs) - allowed)
        if foreign:
            raise CheckpointInvalid(
                f"its git state carries the ref {foreign[0][:120]!r}, which is not one of plan {plan.id!r}'s "
                "branches: refused"
            )
        for task_id in self.worktrees:
            if task_id not in task_ids or task_ref(plan.id, task_id) not in self.refs:
                raise CheckpointInvalid(f"its git state has a worktree for {task_id[:80]!r}, no task of it: refused")


def capture_branches(
    working_directory: Path, plan: Plan, base_commit: str, *, carried: Iterable[str] = ()
) -> BranchState:
    """The plan's integration branch and unfinished tasks' branches and worktree snapshots, as they are now;
    the one bundle in it holds only what the base and the `carried` commits (earlier bundles') do not reach."""
    root = Path(git_bytes(working_directory, "rev-parse", "--show-toplevel").decode().strip())
    common = Path(git_bytes(root, "rev-parse", "--path-format=absolute", "--git-common-dir").decode().strip())
    refs: dict[str, str] = {}
    integration = f"refs/heads/{names.integration_branch(plan.id)}"
    tip = commit_of(root, integration)
    if tip is not None:
        refs[integration] = tip
    worktrees: dict[str, str] = {}
    for task in plan.tasks:
        ref = task_ref(plan.id, task.id)
        tip = commit_of(root, ref) if task.status != "done" else None
        if tip is None:
            continue
        refs[ref] = tip
        path = names.worktree_path(common, plan.id, task.id)
        if (path / ".git").exists():
            worktrees[task.id] = snapshot_commit(path, tip) or ""
    snapshots = {f"refs/snapshots/{task_slug(task_id)}": commit for task_id, commit in worktrees.items() if commit}
    bundle = _bundle(root, {**refs, **snapshots}, [base_commit, *carried])
    return BranchState(refs=refs, worktrees=worktrees, bundles=(bundle,) if bundle else ())


def commit_of(repo: Path, ref: str) -> str | None:
    """The commit `ref` (a ref name or a commit id) names in `repo`, or None when there is none."""
    result = git_result(repo, ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], None)
    return result.stdout.decode().strip() if result.returncode == 0 else None


def task_ref(plan_id: str, task_id: str) -> str:
    return f"refs/heads/{names.task_branch(plan_id, task_id)}"


def borrowing_repository(root: Path, folder: Path) -> Path:
    """A bare repository made in `folder` that reads the objects of the repository at `root` and writes its own:
    a place to build or unpack bundles that leaves the repository as it was."""
    objects = git_bytes(root, "rev-parse", "--path-format=absolute", "--git-path", "objects").decode().strip()
    git_bytes(folder.parent, "init", "--quiet", "--bare", str(folder))
    (folder / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    return folder


def create_refs(repo: Path, refs: Mapping[str, str]) -> None:
    """Create the refs (name -> commit) in one transaction: all of them, or none."""
    transaction = "".join(f"create {ref} {commit}\n" for ref, commit in refs.items())
    git_bytes(repo, "update-ref", "--stdin", stdin=f"start\n{transaction}prepare\ncommit\n".encode())


def _bundle(root: Path, tips: Mapping[str, str], known: list[str]) -> bytes:
    """A bundle of the commits of `tips` (ref name -> commit) and their files that the `known` commits do not
    reach; b"" when there are none (git refuses an empty bundle).

    git bundles refs only, and a snapshot is on no branch, so the bundle is made in a scratch repository that
    borrows this one's objects and names the tips as its refs. git also leaves out only the files of the
    known commits that are parents of commits it carries, and a snapshot is nobody's parent: so the bundle
    also carries a carrier commit (an empty tree) whose parents are all the known commits, which makes every
    file they hold one the receiver already has."""
    with tempfile.TemporaryDirectory(prefix="planeteer-bundle-") as tmp:
        scratch = borrowing_repository(root, Path(tmp) / "scratch.git")
        known = [commit for commit in dict.fromkeys(known) if commit_of(scratch, commit) is not None]
        create_refs(scratch, tips)
        beyond = [
            ref for ref in tips if git_bytes(scratch, "rev-list", "--count", ref, "--not", *known).strip() != b"0"
        ]
        if not beyond:
            return b""
        if known:
            empty_tree = git_bytes(scratch, "mktree", stdin=b"").decode().strip()
            create_refs(
                scratch, {_CARRIER: pinned_commit(scratch, empty_tree, known, "planeteer: what the receiver has")}
            )
            beyond.append(_CARRIER)
        bundle = Path(tmp) / "branches.bundle"
        git_bytes(scratch, "bundle", "create", "--quiet", str(bundle), *beyond, "--not", *known)
        return bundle.read_bytes()
