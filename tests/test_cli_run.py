"""`planeteer run` end to end: the real Copilot CLI, a local scripted model, real tool calls, real files."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import API_KEY, Workspace, make_workspace, runtime_processes
from helpers import git, wait_for

from planeteer_action.copilot.offline_model import OfflineModelServer
from planeteer_action.plan.lock import lock_path
from planeteer_action.plan.session_ids import session_id_for

pytestmark = pytest.mark.integration

DIAMOND = {"setup": [], "api": ["setup"], "ui": ["setup"], "e2e": ["api", "ui"]}


@pytest.fixture
def model() -> Iterator[OfflineModelServer]:
    with OfflineModelServer() as server:
        yield server


def _scripted(tmp_path: Path, script: dict[str, list[dict[str, object]]], edges: dict[str, list[str]]) -> Workspace:
    server = OfflineModelServer(script=script)
    server.start()
    return make_workspace(tmp_path, server, edges)


def test_diamond_runs_to_the_end_in_order_and_tools_change_files(tmp_path: Path) -> None:
    ws = _scripted(
        tmp_path,
        {
            "api": [
                {
                    "create": {
                        "path": str(tmp_path / "repo" / "api.py"),
                        "file_text": "def get_todos():\n    return []\n",
                    }
                }
            ]
        },
        DIAMOND,
    )
    try:
        # Shared: the agents' tools change the checkout itself (worktree isolation has its own tests).
        result = ws.run("run", "--json", "--isolation", "shared")
    finally:
        ws.model.stop()
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["event"] == "run_started" and events[-1] == {
        **events[-1],
        "event": "run_finished",
        "status": "complete",
    }
    assert (ws.repo / "api.py").read_text() == "def get_todos():\n    return []\n"
    for task_id in ("setup", "ui", "e2e"):  # the unscripted tasks write their notes through bash
        assert (ws.repo / "planeteer-notes" / f"{task_id}.md").read_text().startswith(f"# {task_id}\n")
    plan = ws.load()
    for task in plan.tasks:
        assert task.status == "done"
        assert task.session_id == session_id_for("plan-it", task.id, 1)
        assert [a.outcome for a in task.attempts] == ["done"]
    times = {t: [r["time"] for r in ws.model.requests_for(t)] for t in DIAMOND}
    assert max(times["setup"]) < min(times["api"]) and max(times["setup"]) < min(times["ui"])
    assert max(times["api"]) < min(times["e2e"]) and max(times["ui"]) < min(times["e2e"])
    # The dependents' prompts carry what their dependencies reported.
    first_e2e = ws.model.requests_for("e2e")[0]["messages"]
    assert any("Completed api" in (m.get("content") or "") for m in first_e2e if m["role"] == "user")
    assert plan.execution is not None and plan.execution.repository == "octo-org/planeteer-demo"
    assert plan.execution.branch == "main"


def test_a_failing_task_blocks_only_its_dependents(tmp_path: Path) -> None:
    ws = _scripted(tmp_path, {"api": [{"error": 400}]}, {**DIAMOND, "docs": ["ui"]})
    try:
        result = ws.run("run")
    finally:
        ws.model.stop()
    assert result.returncode == 1, result.stderr
    plan = ws.load()
    assert plan.task("api").status == "failed"
    assert plan.task("api").agent_result
    assert [plan.task(t).status for t in ("setup", "ui", "docs")] == ["done"] * 3
    assert plan.task("e2e").status == "pending" and not ws.model.requests_for("e2e")
    assert "task e2e blocked: depends on failed api" in result.stderr
    status = ws.run("status", "--json")
    assert status.returncode == 1
    summary = json.loads(status.stdout)
    assert summary["counts"] == {"done": 3, "failed": 1, "blocked": 1}


def test_a_quiet_turn_fails_its_task_after_the_timeout(tmp_path: Path) -> None:
    ws = _scripted(tmp_path, {"slow": [{"hang": True}]}, {"slow": [], "quick": []})
    try:
        result = ws.run("run", "--task-timeout", "3s")
    finally:
        ws.model.stop()
    assert result.returncode == 1
    plan = ws.load()
    assert plan.task("quick").status == "done"
    assert plan.task("slow").status == "failed"
    assert "no activity for 3" in (plan.task("slow").agent_result or "")
    assert not runtime_processes()


def test_bad_plan_is_refused_by_the_command_and_left_untouched(tmp_path: Path, model: OfflineModelServer) -> None:
    ws = make_workspace(tmp_path, model, {"a": ["b"], "b": ["a"]})
    before = ws.plan.read_bytes()
    result = ws.run("run")
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "dependency cycle a -> b -> a: remove one of these dependencies so the plan can run"
    )
    assert ws.plan.read_bytes() == before
    assert not model.requests


@pytest.mark.parametrize("flag", ["--push", "--pull-request"])
def test_delivery_without_worktree_isolation_is_refused_before_anything_runs(
    tmp_path: Path, model: OfflineModelServer, flag: str
) -> None:
    ws = make_workspace(tmp_path, model, {"a": []})
    before = ws.plan.read_bytes()
    result = ws.run("run", "--isolation", "shared", flag)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "drop --isolation shared" in result.stderr and flag in result.stderr
    assert ws.plan.read_bytes() == before and not lock_path(ws.plan).exists()
    assert not model.requests and git(ws.repo, "branch", "--list", "planeteer/*") == ""


def test_a_second_run_of_the_same_plan_is_refused(tmp_path: Path) -> None:
    ws = _scripted(tmp_path, {"a": [{"hang": True}]}, {"a": []})
    first = ws.start("run")
    try:
        wait_for(lambda: ws.load().task("a").status == "in_progress", what="the first run to start task a")
        second = ws.run("run")
        assert second.returncode == 2
        assert f"is being run by pid {first.pid}" in second.stderr
    finally:
        first.terminate()
        first.communicate(timeout=30)
        ws.model.stop()


def test_the_provider_key_is_never_written_or_shown(tmp_path: Path, model: OfflineModelServer) -> None:
    ws = make_workspace(tmp_path, model, {"a": []})
    result = ws.run("run", "--json")
    assert result.returncode == 0
    assert API_KEY not in result.stdout + result.stderr
    assert API_KEY not in ws.plan.read_text()
    for path in ws.home.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_a_missing_copilot_cli_is_one_line_naming_the_install_command(
    tmp_path: Path, model: OfflineModelServer
) -> None:
    ws = make_workspace(tmp_path, model, {"a": []})
    env = {**ws.env(), "COPILOT_CLI_PATH": str(tmp_path / "no" / "copilot"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(ws.args("run"), cwd=ws.repo, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("planeteer: error: ")
    assert "npm install -g @github/copilot@1.0.102" in lines[0]
    assert ws.load().task("a").status == "pending"


def test_credentials_in_a_provider_url_are_not_recorded(tmp_path: Path, model: OfflineModelServer) -> None:
    ws = make_workspace(tmp_path, model, {"a": []})
    leaky = model.base_url.replace("http://", "http://user:hunter2@") + "?api-key=hunter2"
    args = ws.args("run")
    args[args.index(model.base_url)] = leaky
    subprocess.run(args, cwd=ws.repo, env=ws.env(), capture_output=True, text=True, timeout=120)
    assert "hunter2" not in ws.plan.read_text()
    assert ws.load().execution.provider_base_url == model.base_url  # type: ignore[union-attr]


def test_sessions_cleanup_while_the_plan_runs_is_refused_and_the_run_carries_on(tmp_path: Path) -> None:
    ws = _scripted(tmp_path, {"a": [{"hang": True}]}, {"a": []})
    first = ws.start("run")
    try:
        wait_for(lambda: ws.load().task("a").status == "in_progress", what="the run to start task a")
        session = ws.home / "session-state" / session_id_for("plan-it", "a", 1)
        wait_for(session.exists, what="task a's session")
        cleanup = ws.run("sessions", "cleanup", "--yes", "--copilot-home", str(ws.home), plan=False)
        assert cleanup.returncode == 2, cleanup.stdout + cleanup.stderr
        assert cleanup.stderr.count("\n") == 1 and f"is being run by pid {first.pid}" in cleanup.stderr
        assert session.exists() and first.poll() is None
    finally:
        first.terminate()
        first.communicate(timeout=30)
        ws.model.stop()
