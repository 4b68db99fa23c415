"""Ctrl-C at any instant of a command's first second: exit 130 (or the command's own finish), no traceback.

Before any planeteer code runs, the interpreter's own start-up is out of reach: a SIGINT there ends Python
its own way (killed by the signal, which a shell reports as 130, or a start-up traceback that never passes
through planeteer's code). Those outcomes are told apart by the traceback, never by timing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from harness import PLANETEER, Workspace, make_workspace, runtime_processes
from helpers import wait_for

from planeteer_action.copilot.offline_model import OfflineModelServer
from planeteer_action.plan.store import load_plan

pytestmark = pytest.mark.integration

INSTANTS = [ms / 1000 for ms in range(0, 1001, 50)]
_FRAME = re.compile(r'File "([^"]+)"')


def _interrupt_at(args: list[str], ws: Workspace, delay: float, signum: int) -> tuple[int, str, str]:
    process = ws.launch(args)
    time.sleep(delay)
    os.killpg(process.pid, signum)  # what a terminal's Ctrl-C (SIGINT) or a runner's cancellation sends
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


def _before_planeteer_ran(code: int, stderr: str, signum: int) -> bool:
    """The interpreter's start-up, or the console script finding planeteer's entry, ended it: killed by
    SIGINT, or a start-up traceback in which no planeteer module ran (package `__init__`s hold only names)."""
    ours = [f for f in _FRAME.findall(stderr) if "/planeteer_action/" in f and not f.endswith("__init__.py")]
    if ours or "Aborted" in stderr:
        return False
    return code == -signum or (code == 1 and stderr.rstrip().endswith("KeyboardInterrupt"))


def _sweep(
    args: list[str], ws: Workspace, finished: int | None, signum: int = signal.SIGINT, instants: list[float] = INSTANTS
) -> list[tuple[float, int, str]]:
    wrong = []
    for delay in instants:
        code, stdout, stderr = _interrupt_at(args, ws, delay, signum)
        clean = "Traceback" not in stderr and "Aborted" not in stderr and "Exception ignored" not in stderr
        if code == 130 and clean and stderr.strip():
            continue
        if finished is not None and code == finished and clean and stdout.strip():
            continue
        if not _before_planeteer_ran(code, stderr, signum):
            wrong.append((delay, code, stderr[-400:]))
    return wrong


def test_ctrl_c_in_the_first_second_of_status_exits_130_without_a_traceback(tmp_path: Path) -> None:
    with OfflineModelServer() as model:
        ws = make_workspace(tmp_path, model, {"a": []})
        data = json.loads(ws.plan.read_text())
        data["tasks"][0]["status"] = "done"
        ws.plan.write_text(json.dumps(data, indent=2))
        assert _sweep([str(PLANETEER), "status", str(ws.plan)], ws, finished=0) == []


def test_ctrl_c_in_the_first_second_of_run_exits_130_and_leaves_the_plan_whole(tmp_path: Path) -> None:
    model = OfflineModelServer(script={"a": [{"hang": True}] * 100})
    model.start()
    try:
        ws = make_workspace(tmp_path, model, {"a": []})
        assert _sweep(ws.args("run"), ws, finished=None) == []
        load_plan(ws.plan)  # whole after every interruption
        wait_for(lambda: not runtime_processes(), timeout=30, what="every runtime process to end")
    finally:
        model.stop()


def test_sigterm_while_run_starts_exits_130_like_ctrl_c(tmp_path: Path) -> None:
    """A runner's cancellation or `kill` is SIGTERM: while planeteer loads and starts, it too means 130."""
    model = OfflineModelServer(script={"a": [{"hang": True}] * 100})
    model.start()
    try:
        ws = make_workspace(tmp_path, model, {"a": []})
        instants = [ms / 1000 for ms in range(100, 2001, 150)]
        assert _sweep(ws.args("run"), ws, finished=None, signum=signal.SIGTERM, instants=instants) == []
        load_plan(ws.plan)
        wait_for(lambda: not runtime_processes(), timeout=30, what="every runtime process to end")
    finally:
        model.stop()


def test_sigterm_while_a_finished_run_shuts_down_never_kills_it_with_143(tmp_path: Path) -> None:
    """After the last task is saved done, the run stops its runtime; a SIGTERM then ends it with 130 or
    lets it finish with 0, never the default death by signal."""
    with OfflineModelServer() as model:
        wrong = []
        for delay in (0.0, 0.05, 0.1, 0.2, 0.3):
            ws = make_workspace(tmp_path / f"at-{int(delay * 1000)}", model, {"a": []})
            process = ws.start("run", "--json")
            assert process.stdout is not None
            for line in process.stdout:
                if '"task_done"' in line:
                    break
            time.sleep(delay)
            os.killpg(process.pid, signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
            if process.returncode not in (0, 130) or "Traceback" in stderr:
                wrong.append((delay, process.returncode, stderr[-300:]))
            assert load_plan(ws.plan).task("a").status == "done"
        assert wrong == []
