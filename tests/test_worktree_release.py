"""A done task's worktree handed to the next task (`PlanWorktrees.release`, then `prepare`), on a temporary
repository: the executor hands it on only once the task's merge is saved, the done task's folder is then gone,
the next task gets exactly a fresh checkout of the integrated work, and a kill at any step of either leaves
nothing a next run trips on."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import make_repo
from helpers import git
from memory_agent import MemoryAgent

from planeteer_action.engine.agent import TurnRequest, TurnResult
from planeteer_action.engine.events import Event, TaskDone
from planeteer_action.engine.executor import Executor, ExecutorOptions
from planeteer_action.engine.prompts import TASK_MARKER
from planeteer_action.plan.model import Plan
from planeteer_action.worktrees import git as worktree_git
from planeteer_action.worktrees import names, tasks
from planeteer_action.worktrees.tasks import PlanWorktrees
from planeteer_action.worktrees.workspaces import WorktreeWorkspaces

PLAN = "plan-release"


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, not even `except Exception` handlers."""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo")
    (root / ".gitignore").write_text("build/\n")
    git(root, "add", ".gitignore")
    git(root, "commit", "--quiet", "-m", "ignore build outputs")
    return root


def finish(worktrees: PlanWorktrees, task_id: str, *, leave_build: bool = False) -> Path:
    """Task `task_id` writes `<id>.txt` (and an ignored build output), is committed and merged."""
    path, _ = worktrees.prepare(task_id, None)
    (path / f"{task_id}.txt").write_text(f"{task_id}\n")
    if leave_build:
        (path / "build").mkdir()
        (path / "build" / "out.bin").write_bytes(b"\x00 ignored output")
    assert worktrees.commit(task_id, f"Task {task_id}", f"s-{task_id}")
    assert worktrees.integrate(task_id, f"Task {task_id}").commit is not None
    return path


def checked_out(repo: Path) -> list[str]:
    """The worktrees git knows besides the checkout: `path refs/heads/branch` or `path detached`, sorted."""
    entries = git(repo, "worktree", "list", "--porcelain").split("\n\n")[1:]
    return sorted(" ".join(line.split(" ", 1)[-1] for line in entry.splitlines()[::2]) for entry in entries)


def assert_fresh_checkout_of_the_integrated_work(worktrees: PlanWorktrees, task_id: str, path: Path) -> None:
    assert path == names.worktree_path(worktrees.common_dir, PLAN, task_id)
    assert names.ready_marker(path).exists()
    assert git(path, "symbolic-ref", "HEAD") == f"refs/heads/{names.task_branch(PLAN, task_id)}"
    assert git(path, "rev-parse", "HEAD") == git(path, "rev-parse", worktrees.integration_branch)
    assert git(path, "status", "--porcelain", "--ignored") == ""  # nothing left over, not even ignored files


def assert_nothing_left(repo: Path, worktrees: PlanWorktrees) -> None:
    worktrees.remove()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not names.worktrees_root(worktrees.common_dir, PLAN).exists()
    assert git(repo, "for-each-ref", names.task_branches_prefix(PLAN)) == ""


def test_a_released_worktree_is_gone_and_the_next_task_gets_a_clean_checkout_of_the_integrated_work(
    repo: Path,
) -> None:
    worktrees = PlanWorktrees.open(repo, PLAN, None)
    a = finish(worktrees, "a", leave_build=True)
    worktrees.release("a")
    assert not a.exists() and not names.ready_marker(a).exists()
    assert checked_out(repo) == [f"{names.spare_worktrees(worktrees.common_dir, PLAN)}/0 detached"]
    b, _ = worktrees.prepare("b", None)
    assert_fresh_checkout_of_the_integrated_work(worktrees, "b", b)
    assert (b / "a.txt").read_text() == "a\n" and not (b / "build").exists()
    assert checked_out(repo) == [f"{b} refs/heads/{names.task_branch(PLAN, 'b')}"]
    (b / "b.txt").write_text("b\n")
    assert worktrees.commit("b", "Task b", "s-b")
    assert git(b, "diff-tree", "--no-commit-id", "--name-status", "-r", "HEAD") == "A\tb.txt"
    assert_nothing_left(repo, worktrees)


def test_a_retried_done_task_takes_its_own_branch_back(repo: Path) -> None:
    """Released worktrees hold no branch, so a done task retried later can check its branch out again, even
    in another spare than the one its own worktree became."""
    worktrees = PlanWorktrees.open(repo, PLAN, None)
    worktrees.prepare("a", None)
    finish(worktrees, "c")
    worktrees.release("c")  # spare 0
    finish(worktrees, "a")
    worktrees.release("a")  # spare 1
    path, abandoned = worktrees.prepare("a", 1)  # takes spare 0
    assert abandoned is None  # attempt 1 was merged: nothing of it to keep aside
    assert_fresh_checkout_of_the_integrated_work(worktrees, "a", path)
    assert (path / "c.txt").exists()
    assert_nothing_left(repo, worktrees)


def test_more_spares_than_tasks_are_all_removed_at_the_end(repo: Path) -> None:
    worktrees = PlanWorktrees.open(repo, PLAN, None)
    for task_id in ("a", "b", "c"):
        worktrees.prepare(task_id, None)
    for task_id in ("a", "b", "c"):
        finish(worktrees, task_id)
        worktrees.release(task_id)
    spares = names.spare_worktrees(worktrees.common_dir, PLAN)
    assert sorted(p.name for p in spares.iterdir()) == ["0", "0.ready", "1", "1.ready", "2", "2.ready"]
    assert_nothing_left(repo, worktrees)


def test_spares_damaged_by_hand_are_dropped_and_a_fresh_worktree_made(repo: Path) -> None:
    worktrees = PlanWorktrees.open(repo, PLAN, None)
    finish(worktrees, "a")
    worktrees.release("a")
    spare = names.spare_worktrees(worktrees.common_dir, PLAN) / "0"
    admin = Path(git(spare, "rev-parse", "--absolute-git-dir"))
    shutil.rmtree(admin)  # someone cleaned .git/worktrees by hand
    (spare.parent / "7.ready").touch()  # and removed a spare folder, but not its marker
    b, _ = worktrees.prepare("b", None)
    assert_fresh_checkout_of_the_integrated_work(worktrees, "b", b)
    assert not spare.exists()
    assert_nothing_left(repo, worktrees)


@contextlib.contextmanager
def killed_before(step: int) -> Iterator[None]:
    """The worktree layer's `step`-th (from 0) git call, rename, unlink, touch or rmtree raises Killed instead."""
    calls = itertools.count()

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if next(calls) >= step:
                raise Killed
            return real(*args, **kwargs)

        return call

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tasks, "run_git", wrap(worktree_git.run_git))
        patch.setattr(shutil, "rmtree", wrap(shutil.rmtree))
        for method in ("rename", "unlink", "touch"):
            patch.setattr(Path, method, wrap(getattr(Path, method)))
        yield


def kill_at_every_step(
    tmp_path: Path, setup: Callable[[PlanWorktrees], None], act: Callable[[PlanWorktrees], None]
) -> int:
    """For every point where `act` can be killed: a fresh repository, `setup`, `act` killed there, then a next
    run (a new `PlanWorktrees`) that prepares task b and must find a fresh checkout of the integrated work,
    commit only b's change, and remove everything at the end. Returns the number of kill points."""
    for step in itertools.count():
        repo = make_repo(tmp_path / f"repo-{step}")
        worktrees = PlanWorktrees.open(repo, PLAN, None)
        setup(worktrees)
        with killed_before(step):
            try:
                act(worktrees)
                finished = True
            except Killed:
                finished = False
        again = PlanWorktrees.open(repo, PLAN, worktrees.base_commit)
        b, _ = again.prepare("b", None)
        assert_fresh_checkout_of_the_integrated_work(again, "b", b)
        assert (b / "a.txt").read_text() == "a\n"
        (b / "b.txt").write_text("b\n")
        assert again.commit("b", "Task b", "s-b")
        assert git(b, "diff-tree", "--no-commit-id", "--name-status", "-r", "HEAD") == "A\tb.txt"
        assert_nothing_left(repo, again)
        if finished:
            return step
    raise AssertionError("unreachable")


def a_done(worktrees: PlanWorktrees) -> None:
    finish(worktrees, "a", leave_build=True)


def a_done_and_released(worktrees: PlanWorktrees) -> None:
    finish(worktrees, "a", leave_build=True)
    worktrees.release("a")


def release_a(worktrees: PlanWorktrees) -> None:
    worktrees.release("a")


def prepare_b(worktrees: PlanWorktrees) -> None:
    worktrees.prepare("b", None)


def test_a_kill_at_any_step_of_a_release_leaves_nothing_a_next_run_trips_on(tmp_path: Path) -> None:
    """SIGKILL between "merge saved" and the worktree's hand-over (step 0), or anywhere inside it."""
    assert kill_at_every_step(tmp_path, a_done, release_a) >= 5


def test_a_kill_at_any_step_of_taking_a_spare_leaves_nothing_a_next_run_trips_on(tmp_path: Path) -> None:
    assert kill_at_every_step(tmp_path, a_done_and_released, prepare_b) >= 5


class WritingAgent(MemoryAgent):
    """Each turn writes `<task>.txt`, listing what the task's worktree held when it started, and an ignored
    build output, as an agent's build would."""

    async def run_turn(self, request: TurnRequest) -> TurnResult:
        task_id = request.prompt.split(TASK_MARKER, 1)[1].split()[0]
        workdir = request.working_directory
        seen = sorted(p.name for p in workdir.iterdir() if p.name != ".git")
        (workdir / f"{task_id}.txt").write_text(" ".join(seen))
        (workdir / "build").mkdir(exist_ok=True)
        (workdir / "build" / f"{task_id}.o").write_bytes(b"\x7fELF")
        return await super().run_turn(request)


class WorktreesAtEachSave:
    """A saver that notes, whenever a task is saved done for the first time, whether its worktree was there."""

    def __init__(self, worktrees: PlanWorktrees) -> None:
        self.worktrees = worktrees
        self.first_saved_done: dict[str, bool] = {}

    async def save(self, plan: Plan, changed: Collection[str] | None) -> None:
        for task in plan.tasks:
            if task.status == "done" and task.id not in self.first_saved_done:
                path = names.worktree_path(self.worktrees.common_dir, PLAN, task.id)
                self.first_saved_done[task.id] = names.ready_marker(path).exists()

    def save_blocking(self, plan: Plan, changed: Collection[str] | None) -> None:
        raise AssertionError("not expected in this run")


def test_the_executor_hands_a_done_tasks_worktree_on_only_after_its_merge_is_saved(repo: Path) -> None:
    edges = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    plan = Plan.model_validate(
        {"id": PLAN, "name": "p", "tasks": [{"id": t, "title": t, "dependsOn": d} for t, d in edges.items()]}
    )
    worktrees = PlanWorktrees.open(repo, PLAN, None)
    saver = WorktreesAtEachSave(worktrees)
    options = ExecutorOptions(repo, concurrency=2, workspaces=WorktreeWorkspaces(worktrees))
    done: list[tuple[str, bool]] = []

    def on_event(event: Event) -> None:
        if isinstance(event, TaskDone):
            path = names.worktree_path(worktrees.common_dir, PLAN, event.task_id)
            done.append((event.task_id, path.exists()))

    result = asyncio.run(Executor(plan, WritingAgent(), options, saver, [on_event]).run())
    assert result.status == "complete"
    assert saver.first_saved_done == dict.fromkeys(edges, True)  # saved done while its worktree was still there
    assert sorted(done) == [(task_id, False) for task_id in edges]  # and gone by the time it is reported done
    seen = {t: git(repo, "show", f"{worktrees.integration_branch}:{t}.txt").split() for t in edges}
    assert seen["a"] == [".gitignore", "README.md"]
    assert {"a.txt", "b.txt", "c.txt"} <= set(seen["d"]) and "build" not in seen["d"]
    assert all("a.txt" in seen[t] and "build" not in seen[t] for t in ("b", "c"))
    held = [p for p in names.spare_worktrees(worktrees.common_dir, PLAN).iterdir() if p.is_dir()]
    assert 1 <= len(held) <= 2  # one worktree per task running at once, never one per task
    assert_nothing_left(repo, worktrees)
