"""With worktree isolation a checkpoint carries commits, not a diff: the plan's branches as a git bundle and
each unfinished task's uncommitted worktree changes, rebuilt exactly in a fresh clone at the base commit; a
bundle that must not be trusted is refused before anything in the clone changes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from fakes.github_services import FakeGitHubServices
from helpers import git

from planeteer_action.checkpoints.archive import build_checkpoint, open_checkpoint
from planeteer_action.checkpoints.branch_restore import check_branches, put_back_branches
from planeteer_action.checkpoints.branches import BranchState, capture_branches
from planeteer_action.checkpoints.errors import CheckpointInvalid
from planeteer_action.checkpoints.manifest import CheckpointMeta
from planeteer_action.checkpoints.naming import cache_key
from planeteer_action.checkpoints.restore import RestoreTarget, restore_checkpoint
from planeteer_action.checkpoints.workspace import WorkspaceChangesError
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
    git(origin.parent, "clone", "-q", "--no-checkout", str(origin), str(folder))
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


def checkpoint_bytes(plan: Plan, state: BranchState, base: str, home: Path) -> bytes:
    plan_bytes = plan.model_dump_json(by_alias=True).encode()
    return build_checkpoint(meta(base, plan.id), plan_bytes, home, [], b"", branches=state)


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
    assert set(state.worktrees) == {"committed", "editing"} and state.worktrees["committed"] == b""
    data = checkpoint_bytes(PLAN, state, base, tmp_path / "home")

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
    data = build_checkpoint(meta(base), PLAN.model_dump_json(by_alias=True).encode(), tmp_path, [], b"")
    assert open_checkpoint(data, key=None, expected_plan_id=PLAN_ID).branches is None


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
    return BranchState(refs={ref: orphan}, bundle=bundle.read_bytes())


def refusals(origin: Path, base: str, state: BranchState) -> dict[str, tuple[Plan, BranchState, str]]:
    """Forged states: (plan, state, what the refusal says)."""
    integration = f"refs/heads/{names.integration_branch(PLAN_ID)}"
    foreign = json.loads(PLAN.model_dump_json(by_alias=True)) | {"id": "other-plan"}
    other = {**state.refs, "refs/heads/main": base}
    moved = {**state.refs, integration: base}
    escaping = (
        b"diff --git a/../../evil b/../../evil\nnew file mode 100644\n--- /dev/null\n+++ b/../../evil\n"
        b"@@ -0,0 +1 @@\n+x\n"
    )
    return {
        "ref-outside-the-plan": (PLAN, BranchState(other, state.worktrees, state.bundle), "'refs/heads/main'"),
        "another-plans-branches": (Plan.model_validate(foreign), state, "which is not one of plan 'other-plan'"),
        "not-descending-from-base": (PLAN, orphan_on_task_branch(origin), "does not descend from the base commit"),
        "refs-other-than-the-bundle": (PLAN, BranchState(moved, state.worktrees, state.bundle), "other than its git"),
        "no-bundle": (PLAN, BranchState(state.refs, state.worktrees), "beyond the base commit but no bundle"),
        "damaged-bundle": (PLAN, BranchState(state.refs, state.worktrees, state.bundle[:-40]), "bundle"),
        "worktree-of-no-task": (PLAN, BranchState(state.refs, {"ghost": b""}, state.bundle), "'ghost', no task"),
        "escaping-worktree-patch": (
            PLAN,
            BranchState(state.refs, {**state.worktrees, "editing": escaping}, state.bundle),
            "writes to '../../evil'",
        ),
        "patch-not-applying": (
            PLAN,
            BranchState(state.refs, {**state.worktrees, "editing": NOT_ON_EDITING}, state.bundle),
            "uncommitted changes of task 'editing' do not apply",
        ),
    }


# Changes a file only the `committed` task's branch has.
NOT_ON_EDITING = (
    b"diff --git a/committed.txt b/committed.txt\n--- a/committed.txt\n+++ b/committed.txt\n"
    b"@@ -1 +1 @@\n-committed work\n+changed\n"
)
CASES = [
    "ref-outside-the-plan",
    "another-plans-branches",
    "not-descending-from-base",
    "refs-other-than-the-bundle",
    "no-bundle",
    "damaged-bundle",
    "worktree-of-no-task",
    "escaping-worktree-patch",
    "patch-not-applying",
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
        checkpoint = open_checkpoint(
            checkpoint_bytes(plan, forged, base, tmp_path / "home"), key=None, expected_plan_id=None
        )
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
    check_branches(clone, PLAN_ID, base, state)
    assert len(put_back_branches(clone, PLAN_ID, state)) == 3
    editing = names.worktree_path(
        Path(git(clone, "rev-parse", "--path-format=absolute", "--git-common-dir")), PLAN_ID, "editing"
    )
    (editing / "later.txt").write_text("the agent went on\n")
    check_branches(clone, PLAN_ID, base, state)
    assert put_back_branches(clone, PLAN_ID, state) == []
    assert (editing / "later.txt").read_text() == "the agent went on\n"
