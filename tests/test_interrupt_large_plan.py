"""Ctrl-C on a large plan of quick turns: exit 130 within 5 s at any instant, and a whole plan left behind.

A 10,000-task plan makes every save slow enough (2 MB, fsynced) that a signal often lands while a task
awaits its save: the case that used to kill the plan writer and hang the run until SIGKILL.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from harness import make_workspace
from helpers import wait_for

from planeteer_action.copilot.offline_model import OfflineModelServer

pytestmark = [pytest.mark.integration, pytest.mark.timing]

TASKS = 10_000
# Seconds from the first task done to the signal: turns start, finish and save all through this span.
INSTANTS = [0.0, 0.1, 0.2, 0.25, 0.4, 0.5, 0.6, 0.9, 1.2]
LIMIT_SECONDS = 5.0


def test_sigint_at_many_instants_exits_130_within_5s_with_a_whole_plan(tmp_path: Path) -> None:
    task_ids = [f"t{i:05d}" for i in range(TASKS)]
    with OfflineModelServer(script={task_id: [{"text": "ok"}] * 3 for task_id in task_ids}) as model:
        ws = make_workspace(tmp_path, model, {task_id: [] for task_id in task_ids})
        for round_number, delay in enumerate(INSTANTS):
            out = tmp_path / f"events-{round_number}.jsonl"
            with out.open("w") as stdout, (tmp_path / f"stderr-{round_number}.txt").open("w") as stderr:
                process = subprocess.Popen(
                    ws.args("run", "-j", "8", "--json"),
                    cwd=ws.repo,
                    env=ws.env(),
                    stdout=stdout,
                    stderr=stderr,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                try:
                    wait_for(functools.partial(_has_event, out, "task_done"), timeout=90, what="a task to finish")
                    time.sleep(delay)
                    os.killpg(process.pid, signal.SIGINT)
                    signalled = time.monotonic()
                    try:
                        code = process.wait(timeout=LIMIT_SECONDS)
                    except subprocess.TimeoutExpired:
                        code = None
                    elapsed = time.monotonic() - signalled
                finally:
                    if process.poll() is None:
                        os.killpg(process.pid, signal.SIGKILL)
                        process.wait()
            message = f"round {round_number} (SIGINT {delay} s after the first task was done)"
            stderr_tail = (tmp_path / f"stderr-{round_number}.txt").read_text()[-2000:]
            assert code == 130, f"{message}: exit {code} after {elapsed:.1f} s; stderr ends:\n{stderr_tail}"
            plan = ws.load()  # parses and validates: whole
            assert len(plan.tasks) == TASKS, message
    assert any(task.status == "done" for task in plan.tasks), "no task ran between the signals"


def _has_event(events: Path, name: str) -> bool:
    return f'"event": "{name}"' in events.read_text()
