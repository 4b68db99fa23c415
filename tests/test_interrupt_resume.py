"""Interrupt anywhere, resume in the same sessions, leave nothing behind: on the real Copilot CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from harness import (
    Workspace,
    copilot_cli,
    interrupt,
    make_workspace,
    runtime_processes,
    suite_processes,
    user_messages,
)
from helpers import argv, git, wait_for

from planeteer_action.copilot.agent import CopilotAgent
from planeteer_action.copilot.offline_model import OfflineModelServer, provider_config
from planeteer_action.engine.agent import TurnRequest
from planeteer_action.plan.session_ids import session_id_for
from planeteer_action.worktrees.names import worktree_path

pytestmark = pytest.mark.integration

# Three tasks busy in a long shell command, one finished early, one waiting on a busy task.
EDGES = {"quick": [], "a": [], "b": [], "c": [], "after-a": ["a"]}
SLOW = [{"bash": "sleep 45 && echo slow-step-finished"}]


def _busy_workspace(tmp_path: Path, extra: dict[str, list[dict[str, object]]] | None = None) -> Workspace:
    server = OfflineModelServer(script={"a": list(SLOW), "b": list(SLOW), "c": list(SLOW), **(extra or {})})
    server.start()
    return make_workspace(tmp_path, server, EDGES)


def _sleeping_commands() -> list[int]:
    return [pid for pid in suite_processes() if argv(pid)[:2] == ["sleep", "45"]]


def _interrupt_while_busy(ws: Workspace, signum: int = signal.SIGINT) -> tuple[int, float, str]:
    run = ws.start("run")
    wait_for(lambda: len(_sleeping_commands()) == 3, what="three agents running their shell command")
    wait_for(lambda: ws.load().task("quick").status == "done", what="the quick task to finish")
    return interrupt(run, signum)


def _start_person_session(ws: Workspace) -> str:
    """A person's own Copilot session in the same repository and branch, made without planeteer."""

    async def make() -> None:
        agent = CopilotAgent(Path(copilot_cli()), ws.home, "scripted", provider_config(ws.model.base_url))
        await agent.start()
        try:
            await agent.run_turn(
                TurnRequest("my-own-notes", "my notes", "hello", "create", ws.repo, 60, lambda _: None)
            )
        finally:
            await agent.stop()

    asyncio.run(make())
    return "my-own-notes"


@pytest.mark.timing
def test_sigint_stops_cleanly_then_run_resumes_the_same_sessions(tmp_path: Path) -> None:
    ws = _busy_workspace(tmp_path)
    try:
        code, seconds, stderr = _interrupt_while_busy(ws)
        assert code == 130, stderr
        assert seconds < 5, f"took {seconds:.1f}s to stop"
        assert "interrupted: run the same command again" in stderr
        plan = ws.load()
        for task_id in ("a", "b", "c"):
            task = plan.task(task_id)
            assert task.status == "interrupted"
            assert task.session_id == session_id_for("plan-it", task_id, 1)
        assert plan.task("quick").status == "done" and plan.task("after-a").status == "pending"
        time.sleep(0.5)
        assert not runtime_processes(), "a Copilot CLI or agent process outlived planeteer"
        assert not _sleeping_commands(), "an agent's shell command outlived planeteer"

        before = len(ws.model.requests)
        result = ws.run("run")
        assert result.returncode == 0, result.stderr
        plan = ws.load()
        assert all(t.status == "done" for t in plan.tasks)
        second_run = ws.model.requests[before:]
        assert not [r for r in second_run if r["task_id"] == "quick"], "a finished task was run again"
        for task_id in ("a", "b", "c"):
            task = plan.task(task_id)
            assert task.session_id == session_id_for("plan-it", task_id, 1)
            assert [a.reason for a in task.attempts] == ["first start", "resumed after interruption"]
            resumed = next(r for r in second_run if r["task_id"] == task_id)
            users = user_messages(resumed)
            # The resumed request carries the original prompt, the interrupted tool call, and the continuation.
            assert "Planeteer task id: " + task_id in users[0] and "## Task: Task " + task_id in users[0]
            assert "previous turn on this task was interrupted" in users[-1]
            assert any(m.get("tool_calls") for m in resumed["messages"] if m["role"] == "assistant")
        status = json.loads(ws.run("status", "--json").stdout)
        assert status["complete"] and status["recoveries"][0]["choice"] == "resume"
        assert status["recoveries"][0]["resumed"] == ["a", "b", "c"]
    finally:
        ws.model.stop()


@pytest.mark.parametrize("point", ["before-first-answer", "mid-turn", "mid-tool", "between-tasks"])
def test_sigkill_at_any_point_then_run_completes(tmp_path: Path, point: str) -> None:
    scripts: dict[str, dict[str, list[dict[str, object]]]] = {
        "before-first-answer": {"a": [{"delay": 45}]},
        "mid-turn": {"a": [{"bash": "echo step-one > step-one.txt"}, {"delay": 45}]},
        "mid-tool": {"a": [{"bash": "sleep 45"}]},
        "between-tasks": {"after-a": [{"delay": 45}]},
    }
    script = scripts[point]
    server = OfflineModelServer(script=script)
    server.start()
    ws = make_workspace(tmp_path, server, {"quick": [], "a": [], "after-a": ["a"]})
    try:
        run = ws.start("run")
        watched = "after-a" if point == "between-tasks" else "a"
        wait_for(lambda: ws.load().task("quick").status == "done", what="the quick task")
        wait_for(lambda: ws.load().task(watched).status == "in_progress", what=f"{watched} to start")
        if point == "mid-tool":
            wait_for(lambda: bool(_sleeping_commands()), what="the agent's shell command")
        elif point == "mid-turn":
            step_one = worktree_path(ws.repo / ".git", "plan-it", "a") / "step-one.txt"  # a's own worktree
            wait_for(step_one.exists, what="the first tool call")
        time.sleep(0.5)
        code, _, _ = interrupt(run, signal.SIGKILL)
        assert code == -signal.SIGKILL
        crashed = ws.load()  # parses: never torn
        assert crashed.task(watched).status == "in_progress"
        assert crashed.task(watched).session_id == session_id_for("plan-it", watched, 1)
        wait_for(lambda: not runtime_processes(), timeout=15, what="the orphaned CLI to shut down")

        before = len(server.requests)
        result = ws.run("run")
        assert result.returncode == 0, result.stderr
        assert f"took over the plan's lock from pid {run.pid} on " in result.stderr
        plan = ws.load()
        assert all(t.status == "done" for t in plan.tasks)
        second_run = server.requests[before:]
        assert not [r for r in second_run if r["task_id"] == "quick"]
        task = plan.task(watched)
        if task.attempts[1].reason == "resumed after interruption":
            # Its own session, carrying its earlier conversation.
            assert task.session_id == session_id_for("plan-it", watched, 1)
            first = next(r for r in second_run if r["task_id"] == watched)
            assert len(user_messages(first)) == 2
        else:
            # The CLI had not yet written the session to disk: recovery starts it afresh, recorded as lost.
            assert point == "before-first-answer", [a.reason for a in task.attempts]
            assert [a.outcome for a in task.attempts][:1] == ["lost"]
        if point == "mid-turn":
            resumed = next(r for r in second_run if r["task_id"] == "a")
            # The finished tool call of the killed turn is part of the resumed conversation.
            assert any(m["role"] == "tool" for m in resumed["messages"])
    finally:
        server.stop()


def test_fresh_and_cleanup_do_what_they_say_and_spare_a_persons_sessions(tmp_path: Path) -> None:
    ws = _busy_workspace(tmp_path)
    try:
        mine = _start_person_session(ws)
        code, _, stderr = _interrupt_while_busy(ws)
        assert code == 130, stderr
        old = {t: session_id_for("plan-it", t, 1) for t in ("a", "b", "c")}

        # Start fresh: new sessions; the old ones stay listed (as orphans) until cleaned up.
        fresh = ws.run("run", "--on-interrupted", "fresh")
        assert fresh.returncode == 0, fresh.stderr
        plan = ws.load()
        for task_id, old_id in old.items():
            task = plan.task(task_id)
            assert task.session_id == session_id_for("plan-it", task_id, 2)
            assert [(a.session_id, a.outcome) for a in task.attempts] == [
                (old_id, "superseded"),
                (session_id_for("plan-it", task_id, 2), "done"),
            ]
        listing = json.loads(ws.run("sessions", "list", "--json", "--copilot-home", str(ws.home), plan=False).stdout)
        kinds = {s["sessionId"]: s["kind"] for s in listing}
        assert {kinds[s] for s in old.values()} == {"orphan"}
        assert kinds[mine] == "not-planeteer"
        assert kinds[session_id_for("plan-it", "quick", 1)] == "live"

        dry = ws.run("sessions", "cleanup", "--dry-run", "--copilot-home", str(ws.home), plan=False)
        assert dry.returncode == 0 and all(s in dry.stdout for s in old.values())
        refused = ws.run("sessions", "cleanup", "--copilot-home", str(ws.home), plan=False)
        assert refused.returncode == 2 and "pass --yes" in refused.stderr
        cleanup = ws.run(
            "sessions", "cleanup", "--yes", "--plan", str(ws.plan), "--copilot-home", str(ws.home), plan=False
        )
        assert cleanup.returncode == 0, cleanup.stderr
        assert "deleted 3 session(s)" in cleanup.stdout
        remaining = {p.name for p in (ws.home / "session-state").iterdir() if not p.name.startswith(".")}
        assert mine in remaining
        assert not set(old.values()) & remaining
        assert all(a.session_deleted for t in ws.load().tasks for a in t.attempts if a.session_id in old.values())
    finally:
        ws.model.stop()


def test_cleanup_choice_deletes_interrupted_sessions_and_runs_nothing(tmp_path: Path) -> None:
    ws = _busy_workspace(tmp_path)
    try:
        mine = _start_person_session(ws)
        code, _, stderr = _interrupt_while_busy(ws)
        assert code == 130, stderr
        before = len(ws.model.requests)
        result = ws.run("run", "--on-interrupted", "cleanup")
        assert result.returncode == 0, result.stderr
        assert "deleted 3 session(s)" in result.stderr and "nothing was run" in result.stderr
        assert len(ws.model.requests) == before
        plan = ws.load()
        assert [plan.task(t).status for t in ("a", "b", "c")] == ["pending"] * 3
        assert plan.task("quick").status == "done"
        remaining = {p.name for p in (ws.home / "session-state").iterdir() if not p.name.startswith(".")}
        assert remaining == {mine, session_id_for("plan-it", "quick", 1)}
    finally:
        ws.model.stop()


def test_sessions_moved_to_another_home_and_path_are_found_and_resumed(tmp_path: Path) -> None:
    ws = _busy_workspace(tmp_path)
    try:
        code, _, stderr = _interrupt_while_busy(ws)
        assert code == 130, stderr
        # "Another machine": a fresh clone at another path, a fresh Copilot home holding only the folders.
        other = tmp_path / "elsewhere" / "checkout"
        subprocess.run(["git", "clone", "--quiet", str(ws.repo), str(other)], check=True)
        git(other, "remote", "set-url", "origin", "https://github.com/octo-org/planeteer-demo.git")
        (other / ".planeteer").mkdir()
        shutil.copy(ws.plan, other / ".planeteer" / ws.plan.name)
        home = tmp_path / "elsewhere" / "copilot-home"
        for task_id in ("a", "b", "c"):
            sid = session_id_for("plan-it", task_id, 1)
            shutil.copytree(ws.home / "session-state" / sid, home / "session-state" / sid)
        moved = Workspace(repo=other, home=home, plan=other / ".planeteer" / ws.plan.name, model=ws.model)

        listing = json.loads(moved.run("sessions", "list", "--json", "--copilot-home", str(home), plan=False).stdout)
        assert {s["sessionId"] for s in listing} >= {session_id_for("plan-it", t, 1) for t in ("a", "b", "c")}

        before = len(ws.model.requests)
        result = moved.run("run")
        assert result.returncode == 0, result.stderr
        plan = moved.load()
        assert all(t.status == "done" for t in plan.tasks)
        for task_id in ("a", "b", "c"):
            assert plan.task(task_id).session_id == session_id_for("plan-it", task_id, 1)
            first = next(r for r in ws.model.requests[before:] if r["task_id"] == task_id)
            assert "## Task: Task " + task_id in user_messages(first)[0]
            assert "previous turn on this task was interrupted" in user_messages(first)[-1]
        assert plan.execution is not None and plan.execution.working_directory == str(other)
    finally:
        ws.model.stop()


@pytest.mark.timing
def test_a_second_ctrl_c_exits_at_once_and_still_leaves_a_whole_plan(tmp_path: Path) -> None:
    ws = _busy_workspace(tmp_path)
    try:
        run = ws.start("run")
        wait_for(lambda: len(_sleeping_commands()) == 3, what="three agents running their shell command")
        started = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)
        time.sleep(0.02)
        os.killpg(run.pid, signal.SIGINT)
        run.communicate(timeout=30)
        assert run.returncode == 130
        assert time.monotonic() - started < 3
        plan = ws.load()
        assert [plan.task(t).status for t in ("a", "b", "c")] == ["interrupted"] * 3
        wait_for(lambda: not runtime_processes() and not _sleeping_commands(), timeout=15, what="the CLI to shut down")
        result = ws.run("run")
        assert result.returncode == 0, result.stderr
        assert all(t.status == "done" for t in ws.load().tasks)
    finally:
        ws.model.stop()
