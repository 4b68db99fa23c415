"""Figure 6: from SIGINT to exit, with 8 tasks inside a long tool call."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import time
import uuid
from pathlib import Path

from bench.common import (
    MODEL,
    Sizes,
    child_env,
    copilot_cli,
    make_repo,
    plan_dict,
    planeteer_command,
    scratch,
    task_dict,
)
from bench.report import Results, progress, secs
from planeteer_action.copilot.offline_model import OfflineModelServer
from planeteer_action.plan.model import Plan
from planeteer_action.plan.store import (
    load_plan,
    save_plan,
)


def marked_sleeps(marker: str) -> list[int]:
    """`sleep 60` processes started by this benchmark run (their environment carries the marker)."""
    found = []
    needle = f"BENCH_MARK={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"sleep\x0060"):
                continue
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def runtime_processes_in(folder: Path) -> list[int]:
    """Live processes of a planeteer Copilot runtime (tagged environment) working under `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"PLANETEER_RUNTIME_TAG=" not in (entry / "environ").read_bytes():
                continue
            if os.readlink(entry / "cwd").startswith(str(folder)) and b"Z" not in _state(entry):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _state(entry: Path) -> bytes:
    return entry.joinpath("stat").read_bytes().rsplit(b")", 1)[1].split()[0]


def sigint_once(folder: Path, tasks: int) -> tuple[float, int, int, float]:
    """(seconds from SIGINT to exit, exit code, processes surviving the exit, seconds until all sleeps ran).

    Survivors are the marked `sleep 60`s and any process of planeteer's Copilot runtime (the CLI, its shells)."""
    repo = make_repo(folder / "repo")
    plan_path = repo / ".planeteer" / "bench-sigint.json"
    plan_path.parent.mkdir()
    task_ids = [f"s{i}" for i in range(tasks)]
    save_plan(Plan.model_validate(plan_dict("bench-sigint", [task_dict(t) for t in task_ids])), plan_path)
    marker = uuid.uuid4().hex
    command = {"command": f"BENCH_MARK={marker} sleep 60", "description": "Wait a minute"}
    model = OfflineModelServer(script={t: [{"bash": command}] for t in task_ids})
    args = [str(planeteer_command()), "run", "--provider-base-url", model.start(), "--model", MODEL]
    args += ["--workdir", str(repo), "--copilot-home", str(folder / "copilot-home"), "-j", str(tasks), str(plan_path)]
    log = (folder / "run.log").open("wb")
    process = subprocess.Popen(
        args,
        cwd=repo,
        env=child_env(PLANETEER_PROVIDER_API_KEY="bench"),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        started = time.perf_counter()
        deadline = started + 120
        while len(marked_sleeps(marker)) < tasks:
            if process.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"the {tasks} sleeps never all ran: {(folder / 'run.log').read_text()[-2000:]}")
            time.sleep(0.05)
        busy_after = time.perf_counter() - started
        time.sleep(0.5)  # let every turn settle inside its tool call
        signalled = time.perf_counter()
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=60)
        seconds = time.perf_counter() - signalled
        survivors = len(set(marked_sleeps(marker)) | set(runtime_processes_in(folder)))
        interrupted = sum(t.status == "interrupted" for t in load_plan(plan_path).tasks)
        if interrupted != tasks:
            raise RuntimeError(f"{interrupted} of {tasks} tasks were saved as interrupted")
        return seconds, code, survivors, busy_after
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        model.stop()
        for pid in marked_sleeps(marker):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def figure_sigint(sizes: Sizes, results: Results) -> None:
    fig = "6"
    copilot_cli()
    times: list[float] = []
    codes: list[int] = []
    survivors = 0
    for rep in range(sizes.sigint_repeats):
        progress(f"fig 6: SIGINT with {sizes.sigint_tasks} tasks in `sleep 60`, run {rep + 1}/{sizes.sigint_repeats}")
        with scratch("sigint") as folder:
            seconds, code, left, busy = sigint_once(folder, sizes.sigint_tasks)
        times.append(seconds)
        codes.append(code)
        survivors += left
        results.add(fig, f"run {rep + 1}: all {sizes.sigint_tasks} sleeps running after", secs(busy))
    med, worst = statistics.median(times), max(times)
    results.add(fig, f"SIGINT → exit, median of {len(times)}", secs(med), "≤ 2 s", med <= 2.0)
    results.add(fig, f"SIGINT → exit, max of {len(times)}", secs(worst), "≤ 2 s", worst <= 2.0)
    results.add(fig, "exit codes", ", ".join(map(str, codes)), "130", all(c == 130 for c in codes))
    results.add(fig, "`sleep 60`s or runtime processes left after exit", str(survivors), "0", survivors == 0)
