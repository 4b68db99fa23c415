"""What a person at a terminal sees: the recovery question on a real pseudo-terminal, and `doctor`."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from harness import PLANETEER, Workspace, copilot_cli, interrupt, make_workspace
from helpers import wait_for

from planeteer_action.copilot.offline_model import OfflineModelServer
from planeteer_action.plan.session_ids import session_id_for

pytestmark = pytest.mark.integration


def _run_on_a_terminal(ws: Workspace, answer: bytes) -> tuple[int, str]:
    """`planeteer run` with a pty as its terminal: wait for the question, type the answer, read to the end."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes planeteer, with the pty as stdin, stdout and stderr
        os.chdir(ws.repo)
        os.execve(str(PLANETEER), ws.args("run"), {**ws.env(), "TERM": "xterm", "COLUMNS": "160"})
    screen = b""
    answered = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        if not answered and b"Choice (r, f, c) [r]:" in screen:
            os.write(fd, answer + b"\r")
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), screen.decode(errors="replace")


def test_the_recovery_question_is_asked_on_a_terminal_and_answered(tmp_path: Path) -> None:
    server = OfflineModelServer(script={"a": [{"bash": "sleep 45"}]})
    server.start()
    ws = make_workspace(tmp_path, server, {"a": [], "b": []})
    try:
        run = ws.start("run")
        wait_for(lambda: ws.load().task("b").status == "done" and ws.load().task("a").status == "in_progress")
        time.sleep(0.5)
        code, _, _ = interrupt(run, signal.SIGINT)
        assert code == 130
        code, screen = _run_on_a_terminal(ws, b"f")
        assert code == 0, screen
        assert "An earlier run of this plan did not finish" in screen
        assert "its session exists: can resume" in screen
        assert session_id_for("plan-it", "a", 1) in screen
        plan = ws.load()
        assert plan.task("a").session_id == session_id_for("plan-it", "a", 2)  # "f": started fresh
        assert plan.execution is not None and plan.execution.recoveries[-1].choice == "fresh"
        assert "run complete" in screen
    finally:
        server.stop()


def test_doctor_reports_the_cli_the_provider_the_repository_and_the_plan(tmp_path: Path) -> None:
    with OfflineModelServer() as server:
        ws = make_workspace(tmp_path, server, {"a": []})
        base_url = server.base_url
        env = {**ws.env(), "PLANETEER_PROVIDER_BASE_URL": base_url}
        done = subprocess.run(
            [str(PLANETEER), "doctor", "--json", "--plan", str(ws.plan)],
            cwd=ws.repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["copilot cli"]["ok"] and "1.0.102" in checks["copilot cli"]["detail"]
    assert checks["copilot cli"]["detail"].startswith(copilot_cli())
    assert checks["model provider"]["detail"].startswith(f"BYOK {base_url}")
    assert "sk-" not in done.stdout  # the key is named as set, never shown
    assert checks["repository"]["detail"] == "octo-org/planeteer-demo on main"
    assert checks["plan"]["ok"] and checks["plan folder"]["ok"]


def test_doctor_names_the_install_command_when_there_is_no_cli(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLANETEER_", "COPILOT_"))}
    env.update(COPILOT_CLI_PATH=str(tmp_path / "missing" / "copilot"), PATH="/usr/bin:/bin")
    done = subprocess.run([str(PLANETEER), "doctor"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "npm install -g @github/copilot@1.0.102" in done.stdout
