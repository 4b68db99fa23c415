"""Figure 4: peak memory of the planeteer process itself (and, for context, the CLI's)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Sizes, child_env, make_repo, plan_dict, planeteer_command, random_dag, scratch
from bench.report import Results, mib, progress
from planeteer_action.plan.model import Plan
from planeteer_action.plan.store import (
    load_plan,
    save_plan,
)


def _status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _program(pid: int) -> str:
    """The executable's file name (the CLI binary's thread-named comm says "MainThread")."""
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return "?"


def import_peak(module: str) -> int:
    """VmHWM (KiB) of a fresh Python that imports `module`, read by that process itself.

    Not wait4()'s ru_maxrss: a vfork()ed child's starts from the (large) benchmark process."""
    probe = f"import {module}; print(open('/proc/self/status').read())"
    text = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("VmHWM:"))


@dataclass
class Peaks:
    """What polling a process's tree until it exits found: its own peak, its descendants', and wait4's view."""

    own: int = 0
    samples: int = 0
    tree: dict[tuple[int, str], int] = field(default_factory=dict)
    exit_code: int = 0
    ru_maxrss: int = 0

    def of(self, names: set[str]) -> int:
        return max((kib for (_, name), kib in self.tree.items() if name in names), default=0)


def watch_peaks(process: subprocess.Popen[bytes]) -> Peaks:
    """Read VmHWM of the process and of every descendant every 20 ms until the process exits (and reap it)."""
    peaks = Peaks()
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        hwm = _status_kib(process.pid, "VmHWM")
        if hwm is not None:
            peaks.own = max(peaks.own, hwm)
            peaks.samples += 1
        stack = _children(process.pid)
        while stack:
            child = stack.pop()
            peak = _status_kib(child, "VmHWM")
            if peak is not None:
                # Keyed by program too: a pid is first a fork of its parent, then whatever it exec()s.
                key = (child, _program(child))
                peaks.tree[key] = max(peak, peaks.tree.get(key, 0))
            stack += _children(child)
        time.sleep(0.02)
    process.returncode = peaks.exit_code = os.waitstatus_to_exitcode(status)
    peaks.ru_maxrss = usage.ru_maxrss
    return peaks


def run_offline_plan(folder: Path, n: int, concurrency: int) -> tuple[Peaks, float]:
    """`planeteer run --offline` on an n-task plan as a subprocess: its peaks and how long it took."""
    repo = make_repo(folder / "repo")
    plan_path = repo / ".planeteer" / "bench-memory.json"
    plan_path.parent.mkdir()
    save_plan(Plan.model_validate(plan_dict("bench-memory", random_dag(n, 11))), plan_path)
    args = [str(planeteer_command()), "run", "--offline", "--workdir", str(repo)]
    args += ["--copilot-home", str(folder / "copilot-home"), "-j", str(concurrency), str(plan_path)]
    with (folder / "run.log").open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            args, cwd=repo, env=child_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        peaks = watch_peaks(process)
        elapsed = time.perf_counter() - started
    if peaks.exit_code != 0:
        raise RuntimeError(f"planeteer run exited {peaks.exit_code}: {(folder / 'run.log').read_text()[-2000:]}")
    done = sum(t.status == "done" for t in load_plan(plan_path).tasks)
    if done != n:
        raise RuntimeError(f"only {done} of {n} tasks are done after the run")
    return peaks, elapsed


def figure_memory(sizes: Sizes, results: Results) -> None:
    fig = "4"
    n = sizes.memory_tasks
    progress(f"fig 4: `planeteer run --offline` on a {n}-task plan, -j {sizes.memory_concurrency}")
    with scratch("memory") as folder:
        peaks, elapsed = run_offline_plan(folder, n, sizes.memory_concurrency)
    # Not counted as others: a fork of planeteer before its exec() (it shows the parent's pages), and
    # processes gone before their program could be read.
    interpreter = Path(os.path.realpath(sys.executable)).name
    others = {name for _, name in peaks.tree} - {"copilot", "node", interpreter, "?"}
    programs = {pid for pid, name in peaks.tree if name not in {"copilot", "node"}}
    results.add(fig, f"run: {n} tasks done in {elapsed:.1f} s (-j {sizes.memory_concurrency}, offline model)", "")
    label = f"planeteer process peak RSS (VmHWM, {peaks.samples} samples every 20 ms)"
    results.add(fig, label, mib(peaks.own), "(no target)")
    results.add(fig, "  wait4() ru_maxrss of the same process (includes the waited-for CLI)", mib(peaks.ru_maxrss))
    for label, module in (
        ("planeteer's CLI", "planeteer_action.cli.main"),
        ("planeteer's Copilot agent (the SDK with it)", "planeteer_action.copilot.agent"),
    ):
        results.add(fig, f"  baseline: a Python process that only imports {label}", mib(import_peak(module)))
    results.add(fig, "  for context: the Copilot CLI binary's own peak", mib(peaks.of({"copilot"})))
    results.add(fig, "  for context: its npm loader (node, waits for the binary)", mib(peaks.of({"node"})))
    results.add(
        fig,
        f"  largest of the other {len(programs)} descendants ({', '.join(sorted(others))})",
        mib(peaks.of(others)),
    )
