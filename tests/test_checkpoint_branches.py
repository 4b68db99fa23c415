"""With worktree isolation a checkpoint carries commits, not a diff: the plan's branches and each unfinished
task's uncommitted worktree changes (as a snapshot commit on the task's tip) in a chain of incremental git
bundles, rebuilt exactly in a fresh clone at the base commit, each file carried once; a chain that must not be
trusted is refused before anything in the clone changes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from checkpoint_forgery import one_segment
from fakes.github_services import FakeGitHubServices
from helpers import git

from planeteer_action.checkpoints.archive import Checkpoint, assemble
from planeteer_action.checkpoints.branch_restore import check_branches, put_back_branches
from planeteer_action.checkpoints.branches import BranchState, capture_branches
from planeteer_action.checkpoints.errors import CheckpointInvalid
from planeteer_action.checkpoints.fetch import open_head, open_pieces
from planeteer_action.checkpoints.manifest import CheckpointMeta
from planeteer_action.checkpoints.naming import artifact_name, cache_key
from planeteer_action.checkpoints.restore import RestoreTarget, restore_checkpoint
from planeteer_action.checkpoints.segments import read_segment
from planeteer_action.checkpoints.workspace import WorkspaceChangesError
from planeteer_action.checkpoints.zip_io import DEFAULT_LIMITS
from planeteer_action.github.cache import ActionsCache
from planeteer_action.plan.model import Plan
from planeteer_action.worktrees import names
from planeteer_action.worktrees.tasks import PlanWorktrees

PLAN_ID = "plan-bundles"
RUN = 6160
BINARY = bytes(range(256)) * 8
PLAN = Plan.model_validate(
    {
        "id": PLAN_ID,
        "name": "Bundles",
        "tasks": [
            {"id": "merged", "title": "Merged", "status": "done"},
            {"id": "committed", "title": "Committed", "status": "interrupted"},
            {"id": "editing", "title": "Editing", "status": "in_progress"},
        ],
        "execution": {"isolation": "worktree"},
    }
)


def make_origin(folder: Path) -> str:
    """A repository with a text file, a binary file and a script that is not executable yet; its commit."""
    folder.mkdir(parents=True)
    git(folder, "init", "-q", "-b", "main")
    (folder / "README.md").write_text("hello\n")
    (folder / "logo.bin").write_bytes(BINARY)
    (folder / "run.sh").write_text("#!/bin/sh\necho run\n")
    (folder / "old.txt").write_text("to be deleted\n")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "base")
    return git(folder, "rev-parse", "HEAD")


def run_tasks(repo: Path, base: str) -> PlanWorktrees:
    """`merged` committed and merged, `committed` has a commit of its own, `editing` only uncommitted changes
    (a new binary file, a changed binary, an executable bit, a deletion, an untracked folder)."""
    worktrees = PlanWorktrees.open(repo, PLAN_ID, base)
    worktrees.ensure_integration()
    merged, _ = worktrees.prepare("merged", None)
    (merged / "merged.txt").write_text("merged work\n")
    assert worktrees.commit("merged", "Merged", "s-merged")
    assert worktrees.integrate("merged", "Merged").commit
    committed, _ = worktrees.prepare("committed", None)
    (committed / "committed.txt").write_text("committed work\n")
    assert worktrees.commit("committed", "Committed", "s-committed")
    editing, _ = worktrees.prepare("editing", None)
    (editing / "new.bin").write_bytes(BINARY[::-1] + b"\0tail")
    (editing / "logo.bin").write_bytes(BINARY + b"\x00\xff")
    (editing / "run.sh").chmod(0o755)
    (editing / "old.txt").unlink()
    (editing / "drafts").mkdir()
    (editing / "drafts" / "idea.md").write_text("half an idea\n")
    return worktrees


def plan_refs(repo: Path) -> dict[str, str]:
    out = git(
        repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/planeteer", "refs/heads/planeteer-task"
    )
    return dict(line.split(" ") for line in out.splitlines())


def files_of(folder: Path) -> dict[str, tuple[bool, bytes]]:
    """Every file of a worktree outside `.git`: whether it is executable, and its bytes."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            if name == ".git":  # a worktree's pointer to its repository
                continue
            path = Path(dirpath, name)
            found[path.relative_to(folder).as_posix()] = (bool(path.stat().st_mode & stat.S_IXUSR), path.read_bytes())
    return found


def fresh_clone(origin: Path, base: str, folder: Path) -> Path:
    # As actions/checkout fetches: the one branch, none of the plan's commits.
    git(
        origin.parent,
        "clone",
        "-q",
        "--no-local",
        "--no-checkout",
        "--single-branch",
        "--branch",
        "main",
        str(origin),
        str(folder),
    )
    git(folder, "checkout", "-q", "--detach", base)
    return folder


def repository_state(repo: Path) -> tuple[str, str, list[str]]:
    """Refs, loose and packed objects, and the plan's worktree folder: what a refused restore must not change."""
    common = Path(git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    worktrees = common / "planeteer"
    listing = sorted(str(p.relative_to(common)) for p in worktrees.rglob("*")) if worktrees.exists() else []
    return git(repo, "for-each-ref"), git(repo, "count-objects", "-v"), listing


def meta(base: str, plan_id: str = PLAN_ID) -> CheckpointMeta:
    return CheckpointMeta(plan_id, str(RUN), 1, 1, base, "2026-11-29T15:00:00.000Z", ".planeteer/plan.json")


def checkpoint_bytes(plan: Plan, state: BranchState, base: str) -> bytes:
    """A checkpoint of the plan and its branches in one segment of the state "x"."""
    members = {"plan.json": plan.model_dump_json(by_alias=True).encode(), **state.members()}
    return one_segment("x", meta(base, plan.id), members, bundles=state.bundles)


def open_checkpoint(data: bytes) -> Checkpoint:
    """The checkpoint a segment of `checkpoint_bytes` holds, every piece checked, as a restore opens it."""
    name = artifact_name("x", 1, 1)
    head = open_head(data, name, (1, 1), None, None, RUN)
    copies = {("artifact", name): read_segment(data, DEFAULT_LIMITS)[1]}
    return assemble(head.meta, open_pieces(head, copies, None, lambda ref: ("artifact", ref.segment)))


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, str, PlanWorktrees]:
    origin = tmp_path / "origin"
    base = make_origin(origin)
    return origin, base, run_tasks(origin, base)


def test_branches_and_worktrees_are_rebuilt_exactly_in_a_fresh_clone(
    tmp_path: Path, source: tuple[Path, str, PlanWorktrees], fake: FakeGitHubServices
) -> None:
    origin, base, worktrees = source
    state = capture_branches(origin, PLAN, base)
    integration = f"refs/heads/{names.integration_branch(PLAN_ID)}"
    task_ref = f"refs/heads/{names.task_branch(PLAN_ID, 'committed')}"
    assert set(state.refs) == {integration, task_ref, f"refs/heads/{names.task_branch(PLAN_ID, 'editing')}"}
    assert set(state.worktrees) == {"committed", "editing"} and state.worktrees["committed"] == ""
    assert (
        git(origin, "rev-parse", f"{state.worktrees['editing']}^")
        == state.refs[task_ref.replace("committed", "editing")]
    )
    data = checkpoint_bytes(PLAN, state, base)

    clone = fresh_clone(origin, base, tmp_path / "clone")
    cache = ActionsCache.from_env(fake.runtime_env(RUN, 1))
    assert cache is not None and cache.save(cache_key("x", RUN, 1, 1), data)
    target = RestoreTarget(clone / ".planeteer" / "plan.json", clone, tmp_path / "home2", None)
    warnings: list[str] = []
    restored = restore_checkpoint("x", RUN, PLAN_ID, None, cache, target, warnings.append)

    assert restored is not None, warnings
    assert sorted(restored.branches) == sorted(ref.removeprefix("refs/heads/") for ref in state.refs)
    assert "3 branch(es)" in restored.describe()
    source_refs = plan_refs(origin)
    del source_refs[f"refs/heads/{names.task_branch(PLAN_ID, 'merged')}"]  # done: merged, so it does not travel
    assert plan_refs(clone) == source_refs
    clone_worktrees = PlanWorktrees.open(clone, PLAN_ID, base)
    for task_id in ("committed", "editing"):
        before = names.worktree_path(worktrees.common_dir, PLAN_ID, task_id)
        after = names.worktree_path(clone_worktrees.common_dir, PLAN_ID, task_id)
        assert files_of(after) == files_of(before)
        assert git(after, "status", "--porcelain") == git(before, "status", "--porcelain")
        assert git(after, "rev-parse", "--abbrev-ref", "HEAD") == names.task_branch(PLAN_ID, task_id)
        # The executor's resume finds the worktree where it looks for it, and keeps it as it is.
        assert clone_worktrees.prepare(task_id, None) == (after, None)
        assert files_of(after) == files_of(before)
    assert (names.worktree_path(clone_worktrees.common_dir, PLAN_ID, "editing") / "run.sh").stat().st_mode & 0o111
    # The checkout holds the restored plan and nothing else of the work.
    assert git(clone, "status", "--porcelain", "--untracked-files=all") == "?? .planeteer/plan.json"
    # The work goes on: the restored task's commit merges into the restored integration branch.
    assert clone_worktrees.commit("editing", "Editing", "s-editing")
    assert clone_worktrees.integrate("editing", "Editing").commit


def test_a_shared_plan_carries_no_branches(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    base = make_origin(origin)
    data = one_segment("x", meta(base), {"plan.json": PLAN.model_dump_json(by_alias=True).encode()})
    assert open_checkpoint(data).branches is None


def orphan_on_task_branch(origin: Path) -> BranchState:
    """A task branch whose commit has its own root: nothing of it descends from the base commit."""
    empty_index = {**os.environ, "GIT_INDEX_FILE": str(origin.parent / "empty-index")}
    tree = subprocess.run(
        ["git", "write-tree"], cwd=origin, env=empty_index, capture_output=True, text=True, check=True
    ).stdout.strip()
    orphan = git(origin, "commit-tree", tree, "-m", "unrelated")
    ref = f"refs/heads/{names.task_branch(PLAN_ID, 'committed')}"
    git(origin, "update-ref", ref, orphan)
    bundle = origin.parent / "orphan.bundle"
    git(origin, "bundle", "create", "-q", str(bundle), ref)
    return BranchState(refs={ref: orphan}, bundles=(bundle.read_bytes(),))


def refusals(origin: Path, base: str, state: BranchState) -> dict[str, tuple[Plan, BranchState, str]]:
    """Forged states: (plan, state, what the refusal says)."""
    integration = f"refs/heads/{names.integration_branch(PLAN_ID)}"
    foreign = json.loads(PLAN.model_dump_json(by_alias=True)) | {"id": "other-plan"}
    other = {**state.refs, "refs/heads/main": base}
    nowhere = {**state.refs, integration: "0123456789" * 4}
    editing_tip = state.refs[f"refs/heads/{names.task_branch(PLAN_ID, 'editing')}"]
    committed_tip = state.refs[f"refs/heads/{names.task_branch(PLAN_ID, 'committed')}"]

    def snapshot(parent: str, name: str, mode: str = "100644", content: bytes = b"x\n") -> BranchState:
        """The state with `editing`'s snapshot forged: `parent`'s tree plus one entry git itself would refuse
        to write, carried by one more bundle."""
        forged = forged_snapshot(origin, parent, name, mode, content)
        return BranchState(state.refs, {**state.worktrees, "editing": forged[0]}, (*state.bundles, forged[1]))

    return {
        "ref-outside-the-plan": (PLAN, BranchState(other, state.worktrees, state.bundles), "'refs/heads/main'"),
        "another-plans-branches": (Plan.model_validate(foreign), state, "which is not one of plan 'other-plan'"),
        "not-descending-from-base": (PLAN, orphan_on_task_branch(origin), "does not descend from the base commit"),
        "ref-at-a-commit-no-bundle-carries": (
            PLAN,
            BranchState(nowhere, state.worktrees, state.bundles),
            "at 0123456789012345678901234567890123456789, which no bundle carries",
        ),
        "no-bundle": (PLAN, BranchState(state.refs, state.worktrees), "which no bundle carries"),
        "damaged-bundle": (
            PLAN,
            BranchState(state.refs, state.worktrees, (state.bundles[0][:-40],)),
            "its branch bundle 1 does not",
        ),
        "worktree-of-no-task": (PLAN, BranchState(state.refs, {"ghost": ""}, state.bundles), "'ghost', no task"),
        "worktree-changes-climbing-out": (PLAN, snapshot(editing_tip, ".."), "write to '..'"),
        "worktree-changes-into-git": (PLAN, snapshot(editing_tip, ".git"), "write to '.git'"),
        "worktree-link-out": (PLAN, snapshot(editing_tip, "evil", "120000", b"/root/.bashrc"), "'/root/.bashrc'"),
        "worktree-changes-on-another-tip": (
            PLAN,
            snapshot(committed_tip, "fine.txt"),
            f"uncommitted changes of task 'editing' are not on its branch's tip {editing_tip}",
        ),
        "worktree-changes-no-bundle-carries": (
            PLAN,
            BranchState(state.refs, {**state.worktrees, "editing": "0123456789" * 4}, state.bundles),
            "are commit 0123456789012345678901234567890123456789, which no bundle carries",
        ),
    }


def forged_snapshot(origin: Path, parent: str, name: str, mode: str, content: bytes) -> tuple[str, bytes]:
    """A commit on `parent` whose tree adds the entry `name` (made with mktree, which writes names the index
    never holds), and a bundle carrying it beyond `parent`."""
    blob = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"], cwd=origin, input=content, capture_output=True, check=True
        )
        .stdout.decode()
        .strip()
    )
    listing = git(origin, "ls-tree", f"{parent}^{{tree}}") + f"\n{mode} blob {blob}\t{name}\n"
    tree = (
        subprocess.run(["git", "mktree"], cwd=origin, input=listing.encode(), capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )
    commit = git(origin, "commit-tree", tree, "-p", parent, "-m", "forged")
    git(origin, "update-ref", "refs/forged/snapshot", commit)
    bundle = origin.parent / "forged.bundle"
    git(origin, "bundle", "create", "-q", str(bundle), "refs/forged/snapshot", "--not", parent)
    git(origin, "update-ref", "-d", "refs/forged/snapshot")
    return commit, bundle.read_bytes()


CASES = [
    "ref-outside-the-plan",
    "another-plans-branches",
    "not-descending-from-base",
    "ref-at-a-commit-no-bundle-carries",
    "no-bundle",
    "damaged-bundle",
    "worktree-of-no-task",
    "worktree-changes-climbing-out",
    "worktree-changes-into-git",
    "worktree-link-out",
    "worktree-changes-on-another-tip",
    "worktree-changes-no-bundle-carries",
]


@pytest.mark.parametrize("case", CASES)
def test_a_forged_bundle_is_refused_before_anything_changes(
    tmp_path: Path, source: tuple[Path, str, PlanWorktrees], case: str
) -> None:
    origin, base, _ = source
    state = capture_branches(origin, PLAN, base)
    plan, forged, reason = refusals(origin, base, state)[case]
    clone = fresh_clone(origin, base, tmp_path / "clone")
    before = repository_state(clone)

    with pytest.raises(CheckpointInvalid) as refused:
        checkpoint = open_checkpoint(checkpoint_bytes(plan, forged, base))
        assert checkpoint.branches is not None
        check_branches(clone, plan.id, base, checkpoint.branches)

    assert reason in str(refused.value)
    assert "refused" in str(refused.value)
    assert repository_state(clone) == before


def test_a_checkout_that_cannot_take_the_branches_is_told_how_to_fix_it(
    tmp_path: Path, source: tuple[Path, str, PlanWorktrees]
) -> None:
    origin, base, _ = source
    state = capture_branches(origin, PLAN, base)
    clone = fresh_clone(origin, base, tmp_path / "clone")
    integration = names.integration_branch(PLAN_ID)
    git(clone, "branch", integration, base)  # a branch of the same name, somewhere else
    before = repository_state(clone)
    with pytest.raises(WorkspaceChangesError, match=f"already has {integration} at {base}.*git branch -D"):
        check_branches(clone, PLAN_ID, base, state)
    git(clone, "branch", "-D", integration)
    git(clone, "commit", "-q", "--allow-empty", "-m", "elsewhere")
    with pytest.raises(WorkspaceChangesError, match=f"check out {base}"):
        check_branches(clone, PLAN_ID, base, state)
    assert repository_state(clone)[2] == before[2]


def test_putting_back_twice_keeps_what_is_there(tmp_path: Path, source: tuple[Path, str, PlanWorktrees]) -> None:
    """`planeteer pull` into a repository that already holds the same branches and worktrees changes nothing."""
    origin, base, _ = source
    state = capture_branches(origin, PLAN, base)
    clone = fresh_clone(origin, base, tmp_path / "clone")
    changes = check_branches(clone, PLAN_ID, base, state)
    assert len(put_back_branches(clone, PLAN_ID, state, changes)) == 3
    editing = names.worktree_path(
        Path(git(clone, "rev-parse", "--path-format=absolute", "--git-common-dir")), PLAN_ID, "editing"
    )
    (editing / "later.txt").write_text("the agent went on\n")
    assert put_back_branches(clone, PLAN_ID, state, check_branches(clone, PLAN_ID, base, state)) == []
    assert (editing / "later.txt").read_text() == "the agent went on\n"


def prerequisites(bundle: bytes) -> set[str]:
    """The commits a bundle needs the repository to have already (its header's `-<commit>` lines)."""
    header = bundle.split(b"\n\n", 1)[0].decode()
    return {line[1:41] for line in header.splitlines() if line.startswith("-")}


def test_a_chain_of_bundles_carries_each_commit_once_and_goes_back_whole(
    tmp_path: Path, source: tuple[Path, str, PlanWorktrees]
) -> None:
    origin, base, worktrees = source
    first = capture_branches(origin, PLAN, base)
    committed = names.worktree_path(worktrees.common_dir, PLAN_ID, "committed")
    (committed / "more.txt").write_text("more work\n")
    assert worktrees.commit("committed", "Committed", "s-committed")
    second = capture_branches(origin, PLAN, base, carried=first.commits())

    task_ref = f"refs/heads/{names.task_branch(PLAN_ID, 'committed')}"
    assert prerequisites(first.bundles[0]) == {base}
    # Everything the first carried is the second's to build on: only the new commit travels.
    assert prerequisites(second.bundles[0]) == {base, *first.commits()}
    assert first.refs[task_ref] != second.refs[task_ref]
    chain = BranchState(second.refs, second.worktrees, first.bundles + second.bundles)
    clone = fresh_clone(origin, base, tmp_path / "clone")
    put_back_branches(clone, PLAN_ID, chain, check_branches(clone, PLAN_ID, base, chain))
    assert plan_refs(clone) == {ref: commit for ref, commit in plan_refs(origin).items() if ref in second.refs}

    unlinked = fresh_clone(origin, base, tmp_path / "unlinked")
    before = repository_state(unlinked)
    with pytest.raises(CheckpointInvalid, match="its branch bundle 1 does not verify here"):
        check_branches(unlinked, PLAN_ID, base, BranchState(second.refs, second.worktrees, second.bundles))
    assert repository_state(unlinked) == before
    assert not capture_branches(origin, PLAN, base, carried=second.commits()).bundles  # nothing new: no bundle


def test_a_file_caught_uncommitted_travels_once_however_often_it_is_caught(
    tmp_path: Path, source: tuple[Path, str, PlanWorktrees]
) -> None:
    """A checkpoint that catches an agent's file before its task commits carries it; neither a checkpoint that
    catches it again nor the one after the task's commit carries it a second time."""
    origin, base, worktrees = source
    editing = names.worktree_path(worktrees.common_dir, PLAN_ID, "editing")
    data = os.urandom(256 * 1024)  # incompressible: whichever bundle carries it is at least this big
    (editing / "big.bin").write_bytes(data)
    first = capture_branches(origin, PLAN, base)
    assert not capture_branches(origin, PLAN, base, carried=first.commits()).bundles
    assert worktrees.commit("editing", "Editing", "s-editing")
    second = capture_branches(origin, PLAN, base, carried=first.commits())

    assert len(first.bundles[0]) > len(data) > 20 * len(second.bundles[0])
    assert second.worktrees["editing"] == ""  # all of it committed now
    chain = BranchState(second.refs, second.worktrees, first.bundles + second.bundles)
    clone = fresh_clone(origin, base, tmp_path / "clone")
    put_back_branches(clone, PLAN_ID, chain, check_branches(clone, PLAN_ID, base, chain))
    task = names.task_branch(PLAN_ID, "editing")
    assert subprocess.run(["git", "show", f"{task}:big.bin"], cwd=clone, capture_output=True, check=True).stdout == data
