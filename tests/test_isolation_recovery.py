"""Recovery with worktree isolation, on the real Copilot CLI: a SIGKILL at each step of finishing a task
(turn ended, committed, merged, saved) leaves exactly one commit per task, and "Start fresh" leaves no
trace of the abandoned attempt's edits in the result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from harness import Workspace
from helpers import git
from test_interrupt_resume import _start_person_session
from test_isolation import BRANCH, run, scripted, sessions_on

from planeteer_action.engine.workspaces import FINISH_STEPS
from planeteer_action.plan.session_ids import session_id_for

pytestmark = pytest.mark.integration

STOPPER = Path(__file__).with_name("stop_at_step.py")


def run_until_killed(ws: Workspace, task: str, step: str) -> None:
    args = [sys.executable, str(STOPPER), str(ws.plan), str(ws.repo), str(ws.home), ws.model.base_url, task, step]
    killed = subprocess.run(args, cwd=ws.repo, env=ws.env(), capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr


@pytest.mark.parametrize("step", FINISH_STEPS)
def test_a_kill_at_each_step_recovers_with_exactly_one_commit_per_task(tmp_path: Path, step: str) -> None:
    ws = scripted(tmp_path, {}, {"a": [], "b": ["a"]})
    run_until_killed(ws, "a", step)
    assert (ws.load().task("a").status == "done") == (step == "saved")
    result = run(ws)
    assert result.returncode == 0, result.stderr
    assert sorted(sessions_on(ws.repo, BRANCH)) == [session_id_for("plan-it", t, 1) for t in ("a", "b")]
    plan = ws.load()
    merge = plan.task("a").commit
    assert merge is not None and git(ws.repo, "show", f"{merge}:planeteer-notes/a.md").startswith("# a")
    assert git(ws.repo, "rev-list", "--count", "--merges", BRANCH) == "2"  # one merge per task
    # Whatever the kill interrupted (after "saved": the hand-over of a's worktree), nothing is left over.
    assert git(ws.repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(ws.repo, "branch", "--list", "planeteer-task/*") == ""


def test_start_fresh_leaves_no_trace_of_the_abandoned_attempt(tmp_path: Path) -> None:
    ws = scripted(tmp_path, {"a": [{"bash": "echo half-done > half.txt"}]}, {"a": []})
    run_until_killed(ws, "a", "turn_ended")
    result = run(ws, "--on-interrupted", "fresh")
    assert result.returncode == 0, result.stderr
    files = git(ws.repo, "ls-tree", "-r", "--name-only", BRANCH).split()
    assert "half.txt" not in files and "planeteer-notes/a.md" in files
    first = ws.load().task("a").attempts[0]
    assert first.outcome == "superseded" and first.abandoned_ref is not None
    assert git(ws.repo, "show", f"{first.abandoned_ref}:half.txt") == "half-done"
    assert sessions_on(ws.repo, BRANCH) == [session_id_for("plan-it", "a", 2)]


def test_retry_after_a_failure_starts_from_the_integrated_work(tmp_path: Path) -> None:
    """`retry` changes only the plan; the next run resets the task's worktree before the new attempt starts."""
    steps: list[dict[str, object]] = [
        {"bash": "echo half-done > half.txt"},
        {"error": 400},
        {"bash": "ls -A > seen.txt"},
    ]
    script = {"a": steps}
    ws = scripted(tmp_path, script, {"a": []})
    assert ws.run("run").returncode == 1
    assert ws.run("retry", str(ws.plan), "a", plan=False).returncode == 0
    result = run(ws)
    assert result.returncode == 0, result.stderr
    assert git(ws.repo, "show", f"{BRANCH}:seen.txt").split() == [".git", "README.md", "seen.txt"]  # what attempt 2 saw
    assert "half.txt" not in git(ws.repo, "ls-tree", "-r", "--name-only", BRANCH).split()
    first = ws.load().task("a").attempts[0]
    assert first.outcome == "failed" and first.abandoned_ref is not None
    assert git(ws.repo, "show", f"{first.abandoned_ref}:half.txt") == "half-done"


def test_clean_up_removes_the_plans_worktrees_and_task_branches(tmp_path: Path) -> None:
    ws = scripted(tmp_path, {}, {"a": []})
    run_until_killed(ws, "a", "committed")
    assert git(ws.repo, "branch", "--list", "planeteer-task/*")
    result = run(ws, "--on-interrupted", "cleanup")
    assert result.returncode == 0, result.stderr
    assert "removed the plan's task worktrees" in result.stderr
    assert git(ws.repo, "branch", "--list", "planeteer-task/*") == ""
    assert git(ws.repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(ws.repo, "rev-parse", BRANCH) == git(ws.repo, "rev-parse", "main")  # nothing was merged


def test_sessions_list_and_cleanup_see_isolated_tasks_sessions_and_spare_a_persons(tmp_path: Path) -> None:
    """An isolated task's session is recorded under its task branch, not the checkout's: the commands
    scoped to the checkout's branch must still find it, and still never touch a person's own session."""
    ws = scripted(tmp_path, {}, {"a": []})
    mine = _start_person_session(ws)
    run_until_killed(ws, "a", "turn_ended")
    assert run(ws, "--on-interrupted", "fresh").returncode == 0
    superseded, held = session_id_for("plan-it", "a", 1), session_id_for("plan-it", "a", 2)
    listing = ws.run("sessions", "list", "--json", "--copilot-home", str(ws.home), plan=False)
    kinds = {s["sessionId"]: (s["kind"], s["branch"]) for s in json.loads(listing.stdout)}
    task_branch = kinds[held][1]
    assert task_branch is not None and task_branch.startswith("planeteer-task/")
    assert kinds == {superseded: ("orphan", task_branch), held: ("live", task_branch), mine: ("not-planeteer", "main")}
    cleanup = ws.run("sessions", "cleanup", "--yes", "--copilot-home", str(ws.home), plan=False)
    assert cleanup.returncode == 0, cleanup.stderr
    assert cleanup.stdout.split() == ["deleted", "1", "session(s):", superseded]
    remaining = {p.name for p in (ws.home / "session-state").iterdir() if not p.name.startswith(".")}
    assert remaining == {mine, held}
