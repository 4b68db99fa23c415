"""The worktree layer on a temporary repository: isolation, commits with trailers, merges, resets, removal,
and every step safe to repeat after a crash."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from harness import make_repo
from helpers import git

from planeteer_action.errors import ConfigError
from planeteer_action.plan.model import Plan
from planeteer_action.runner import RunConfig, open_worktrees
from planeteer_action.worktrees.names import integration_branch, task_branch
from planeteer_action.worktrees.tasks import PlanWorktrees

PLAN = "plan-wt"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo")
    (root / "dirty.txt").write_text("the user's own uncommitted work\n")
    git(root, "add", "dirty.txt")
    (root / "untracked.txt").write_text("also theirs\n")
    return root


def user_state(repo: Path) -> tuple[str, str, str]:
    return git(repo, "rev-parse", "HEAD"), git(repo, "symbolic-ref", "HEAD"), git(repo, "status", "--porcelain")


def trailers(repo: Path, ref: str) -> list[str]:
    return git(repo, "log", "--format=%(trailers:key=Planeteer-Session,valueonly)", ref).split()


def test_tasks_work_apart_and_merge_one_commit_each(repo: Path) -> None:
    before = user_state(repo)
    worktrees = PlanWorktrees.open(repo, PLAN, None)
    a, _ = worktrees.prepare("a", None)
    b, _ = worktrees.prepare("b", None)
    (a / "a.txt").write_text("a\n")
    (b / "b.txt").write_text("b\n")
    assert not (b / "a.txt").exists()
    assert worktrees.commit("a", "Task a", "planeteer-x-a-a1")
    assert worktrees.commit("b", "Task b", "planeteer-x-b-a1")
    first = worktrees.integrate("a", "Task a")
    second = worktrees.integrate("b", "Task b")
    assert first.changed and second.changed and not second.conflicts
    assert git(repo, "rev-parse", integration_branch(PLAN)) == second.commit
    assert sorted(trailers(repo, integration_branch(PLAN))) == ["planeteer-x-a-a1", "planeteer-x-b-a1"]
    dependent, _ = worktrees.prepare("c", None)
    assert (dependent / "a.txt").exists() and (dependent / "b.txt").exists()
    assert user_state(repo) == before
    assert not (repo / "a.txt").exists()


def test_every_step_repeated_after_a_crash_keeps_exactly_one_commit(repo: Path) -> None:
    worktrees = PlanWorktrees.open(repo, PLAN, None)
    path, _ = worktrees.prepare("a", None)
    (path / "a.txt").write_text("a\n")
    assert worktrees.commit("a", "Task a", "s1")
    assert not worktrees.commit("a", "Task a", "s1")  # committed, then killed: nothing left to commit
    merged = worktrees.integrate("a", "Task a")
    again = PlanWorktrees.open(repo, PLAN, worktrees.base_commit).integrate("a", "Task a")  # merged, then killed
    assert again == merged
    assert trailers(repo, integration_branch(PLAN)) == ["s1"]
    assert worktrees.prepare("a", None)[0] == path  # resume reuses the worktree as it is
    other, _ = worktrees.prepare("b", None)
    (other / "b.txt").write_text("b\n")
    worktrees.commit("b", "Task b", "s2")
    assert worktrees.integrate("b", "Task b").commit != merged.commit
    assert worktrees.integrate("a", "Task a") == merged  # found by its trailer, not taken for the newer tip


def test_a_task_that_changed_nothing_adds_no_commit(repo: Path) -> None:
    worktrees = PlanWorktrees.open(repo, PLAN, None)
    worktrees.prepare("idle", None)
    assert not worktrees.commit("idle", "Idle", "s1")
    result = worktrees.integrate("idle", "Idle")
    assert not result.changed and result.commit == worktrees.base_commit


def test_conflicting_edits_name_the_paths_and_move_nothing(repo: Path) -> None:
    worktrees = PlanWorktrees.open(repo, PLAN, None)
    for task in ("a", "b"):
        path, _ = worktrees.prepare(task, None)
        (path / "README.md").write_text(f"{task}\n")
        worktrees.commit(task, task, f"s-{task}")
    tip = worktrees.integrate("a", "a").commit
    result = worktrees.integrate("b", "b")
    assert result.commit is None and result.conflicts == ["README.md"]
    assert git(repo, "rev-parse", integration_branch(PLAN)) == tip


def test_reset_keeps_the_abandoned_work_on_a_ref_and_leaves_no_trace(repo: Path) -> None:
    worktrees = PlanWorktrees.open(repo, PLAN, None)
    path, _ = worktrees.prepare("a", None)
    (path / "half.txt").write_text("half done\n")
    (path / "README.md").write_text("edited\n")
    same, kept = worktrees.prepare("a", 1)
    assert same == path and kept is not None
    assert not (path / "half.txt").exists() and (path / "README.md").read_text() == "demo\n"
    assert git(repo, "show", f"{kept}:half.txt") == "half done"
    assert worktrees.prepare("a", 2)[1] is None  # nothing left to abandon


def test_remove_drops_worktrees_and_task_branches_but_keeps_the_result(repo: Path) -> None:
    worktrees = PlanWorktrees.open(repo, PLAN, None)
    path, _ = worktrees.prepare("a", None)
    (path / "a.txt").write_text("a\n")
    kept = worktrees.prepare("a", 1)[1]
    assert worktrees.remove(abandoned=False) == [f"refs/heads/{task_branch(PLAN, 'a')}"]
    assert git(repo, "rev-parse", "--verify", f"{kept}^{{commit}}")
    worktrees.prepare("a", None)
    removed = worktrees.remove()
    assert f"refs/heads/{task_branch(PLAN, 'a')}" in removed and len(removed) == 2
    assert not path.exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "rev-parse", "--verify", integration_branch(PLAN))


def test_a_folder_that_is_not_a_repository_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not in a git repository.*--isolation shared"):
        PlanWorktrees.open(tmp_path, PLAN, None)


def test_a_plan_left_unfinished_in_worktrees_is_not_resumed_in_the_shared_tree(repo: Path) -> None:
    plan = Plan.model_validate(
        {
            "id": PLAN,
            "name": "p",
            "tasks": [{"id": "a", "title": "a", "status": "interrupted"}],
            "execution": {"isolation": "worktree"},
        }
    )
    config = RunConfig(plan_path=repo / "plan.json", working_directory=repo, isolation="shared")
    with pytest.raises(ConfigError, match=r"run it again with --isolation worktree, or `planeteer retry`"):
        open_worktrees(plan, config)
    opened = open_worktrees(plan, replace(config, isolation="worktree"))
    assert opened is not None and plan.execution is not None
    assert plan.execution.base_commit == git(repo, "rev-parse", "HEAD")
    assert plan.execution.integration_branch == integration_branch(PLAN)


def test_a_checked_out_integration_branch_is_refused_before_it_could_move_under_the_user(repo: Path) -> None:
    PlanWorktrees.open(repo, PLAN, None).ensure_integration()
    git(repo, "stash", "--include-untracked")
    git(repo, "switch", "--quiet", integration_branch(PLAN))
    with pytest.raises(ConfigError, match=r"is checked out in .*switch that checkout to another branch"):
        PlanWorktrees.open(repo, PLAN, None)


def test_a_checkout_a_kill_interrupted_is_made_again_not_committed_as_deletions(repo: Path) -> None:
    """SIGKILL inside `git worktree add` leaves a worktree with `.git` but only part of its files. No agent
    has worked there yet, so the next run must make it again: reused, its missing files would be committed
    as the task deleting them (seen in the chaos bench: a task's commit deleted two other tasks' notes)."""
    worktrees = PlanWorktrees.open(repo, PLAN, None)
    (a, _) = worktrees.prepare("a", None)
    (a / "a.txt").write_text("a\n")
    assert worktrees.commit("a", "Task a", "planeteer-x-a-a1")
    worktrees.integrate("a", "Task a")
    b, _ = worktrees.prepare("b", None)
    # What an interrupted checkout leaves: the worktree is registered, files are missing, and it was never
    # handed to an agent.
    (b / "a.txt").unlink()
    (b / "README.md").unlink()
    for marker in b.parent.glob("*.ready"):
        if marker.name.startswith(b.name):
            marker.unlink()
    b, _ = worktrees.prepare("b", None)
    (b / "b.txt").write_text("b\n")
    assert worktrees.commit("b", "Task b", "planeteer-x-b-a1")
    changed = git(repo, "diff", "--name-status", f"{task_branch(PLAN, 'b')}~1", task_branch(PLAN, "b"))
    assert changed.splitlines() == ["A\tb.txt"]
