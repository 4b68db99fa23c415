"""`planeteer run --isolation worktree` end to end: the real Copilot CLI, a scripted model making real tool
calls, each task in its own git worktree, merged into `planeteer/<plan id>`, the user's checkout untouched."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from harness import Workspace, make_workspace
from helpers import git

from planeteer_action.copilot.offline_model import OfflineModelServer
from planeteer_action.plan.session_ids import session_id_for

pytestmark = pytest.mark.integration

BRANCH = "planeteer/plan-it"


def scripted(tmp_path: Path, script: Mapping[str, Sequence[dict[str, Any]]], edges: dict[str, list[str]]) -> Workspace:
    server = OfflineModelServer(script=script)
    server.start()
    return make_workspace(tmp_path, server, edges)


def run(ws: Workspace, *extra: str) -> subprocess.CompletedProcess[str]:
    try:
        return ws.run("run", "--isolation", "worktree", *extra)
    finally:
        ws.model.stop()


def checkout_state(repo: Path) -> tuple[str, str, str]:
    """The user's branch, HEAD, index and files (the plan's own folder aside)."""
    status = git(repo, "status", "--porcelain", "--untracked-files=all", "--", ".", ":!.planeteer")
    return git(repo, "symbolic-ref", "HEAD"), git(repo, "rev-parse", "HEAD"), status


def sessions_on(repo: Path, ref: str) -> list[str]:
    """The Planeteer-Session trailers of the commits on `ref`: one per task commit."""
    return git(repo, "log", "--format=%(trailers:key=Planeteer-Session,valueonly)", ref).split()


# A bash step's tail that waits (up to 60 s) until another task has merged into the integration branch, which
# starts at the user's `main`: the conflict then happens every time, whatever the machine's load.
WAIT_FOR_MERGE = (
    f'for i in $(seq 300); do [ "$(git rev-parse {BRANCH})" != "$(git rev-parse main)" ] && break; sleep 0.2; done'
)


def make_user_mess(repo: Path) -> None:
    (repo / "README.md").write_text("the user's unsaved edit\n")
    (repo / "scratch.txt").write_text("untracked, theirs\n")


def test_parallel_tasks_merge_one_commit_each_and_the_dependent_sees_both(tmp_path: Path) -> None:
    ws = scripted(tmp_path, {"c": [{"bash": "ls planeteer-notes > seen.txt"}]}, {"a": [], "b": [], "c": ["a", "b"]})
    make_user_mess(ws.repo)
    before = checkout_state(ws.repo)
    result = run(ws)
    assert result.returncode == 0, result.stderr
    assert f"git merge {BRANCH}" in result.stderr
    assert "task a done (merged as " in result.stderr
    assert checkout_state(ws.repo) == before
    assert not (ws.repo / "planeteer-notes").exists() and not (ws.repo / "seen.txt").exists()
    assert git(ws.repo, "show", f"{BRANCH}:seen.txt").split() == ["a.md", "b.md"]  # c's worktree had both
    assert sorted(sessions_on(ws.repo, BRANCH)) == [session_id_for("plan-it", t, 1) for t in ("a", "b", "c")]
    subjects = git(ws.repo, "log", "--no-merges", "--format=%s", f"main..{BRANCH}").splitlines()
    assert sorted(subjects) == ["Task a", "Task b", "Task c"]
    plan = ws.load()
    assert plan.execution is not None and plan.execution.base_commit == before[1]
    assert plan.task("c").commit == git(ws.repo, "rev-parse", BRANCH)
    assert all(plan.task(t).commit for t in ("a", "b"))
    # Done: the task worktrees and branches are gone, the result stays.
    assert git(ws.repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(ws.repo, "branch", "--list", "planeteer-task/*") == ""
    status = ws.run("status", "--json")
    assert '"commit"' in status.stdout and plan.task("a").commit in status.stdout  # type: ignore[operator]


def test_a_conflict_is_resolved_by_the_tasks_own_session(tmp_path: Path) -> None:
    resolve = (
        f"git merge {BRANCH} >/dev/null; printf 'a\\nb\\n' > README.md; git add README.md; git commit -qm resolved"
    )
    script = {
        "a": [{"bash": "printf 'a\\n' > README.md"}],
        "b": [{"bash": f"printf 'b\\n' > README.md; {WAIT_FOR_MERGE}"}, {"text": "b done"}, {"bash": resolve}],
    }
    script["after_b"] = [{"text": "Nothing was left to do."}]
    ws = scripted(tmp_path, script, {"a": [], "b": [], "after_b": ["b"]})
    result = run(ws)
    assert result.returncode == 0, result.stderr
    assert git(ws.repo, "show", f"{BRANCH}:README.md") == "a\nb"
    plan = ws.load()
    reasons = [attempt.reason for attempt in plan.task("b").attempts]
    assert reasons[-1].startswith("merge conflict")
    conflict_prompt = ws.model.requests_for("b")[-2]["messages"][-1]["content"]
    assert "README.md" in conflict_prompt and f"git merge {BRANCH}" in conflict_prompt
    # A task that changed nothing adds no commit and says so.
    assert "task after_b done (no changes)" in result.stderr
    after_b = plan.task("after_b")
    assert after_b.status == "done" and after_b.commit == plan.task("b").commit == git(ws.repo, "rev-parse", BRANCH)
    assert after_b.attempts[-1].no_changes


def test_an_unresolved_conflict_fails_only_that_task_and_its_dependents(tmp_path: Path) -> None:
    script = {
        "a": [{"bash": "printf 'a\\n' > README.md"}],
        "b": [{"bash": f"printf 'b\\n' > README.md; {WAIT_FOR_MERGE}"}, {"text": "b done"}, {"text": "cannot"}],
    }
    ws = scripted(tmp_path, script, {"a": [], "b": [], "after_a": ["a"], "after_b": ["b"]})
    result = run(ws)
    assert result.returncode == 1
    plan = ws.load()
    assert plan.task("b").status == "failed" and "README.md" in (plan.task("b").agent_result or "")
    assert plan.task("after_b").status == "pending" and "task after_b blocked" in result.stderr
    assert [plan.task(t).status for t in ("a", "after_a")] == ["done", "done"]
    assert git(ws.repo, "show", f"{BRANCH}:README.md") == "a"
