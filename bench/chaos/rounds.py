"""One chaos round: start (or resume) `planeteer run`, signal its process group at a chosen instant, measure.

The instant is drawn from the seeded generator: a signal (SIGKILL, SIGINT or SIGTERM) a random delay after a
moment of the run (its start; the n-th task session started; the n-th model request; a task's `sleep` tool
running; the n-th task done), so signals land during start-up and recovery, right after a session starts,
mid-turn, mid-tool and between tasks. The same seed draws the same instants again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos.model import ChaosModel
from bench.chaos.workload import Epoch
from bench.common import child_env, planeteer_command
from planeteer_action.copilot.runtime import tagged_processes
from planeteer_action.plan.model import parse_time
from planeteer_action.plan.store import load_plan

SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
MOMENTS = ("start", "session start", "model request", "sleep tool", "task done")
CLEAN_EXIT_CODE = 130
CLEAN_EXIT_SECONDS = 5.0
CONCURRENCY = 3
MOMENT_TIMEOUT = 60.0
"""A moment that has not come after this long is given up: the run is signalled anyway."""
HANG_SECONDS = 30.0
"""A run still there this long after its signal is counted as hung and killed."""
RUN_TIMEOUT = 300.0


@dataclass(frozen=True)
class Instant:
    signal_name: str
    moment: str
    nth: int
    delay: float

    def describe(self) -> str:
        named = {"start": "the start", "sleep tool": "a sleep tool started"}
        after = named.get(self.moment, f"{self.moment} #{self.nth}")
        return f"{self.signal_name:<7} {self.delay * 1000:5.0f} ms after {after}"


def draw_instant(rng: random.Random) -> Instant:
    moment = rng.choice(MOMENTS)
    ranges = {"start": (0.0, 2.5), "session start": (0.0, 0.1), "model request": (0.0, 0.2)}
    low, high = ranges.get(moment, (0.0, 0.5) if moment == "sleep tool" else (0.0, 0.03))
    nth = rng.randint(1, 3) if moment in ("session start", "model request", "task done") else 1
    return Instant(rng.choice(sorted(SIGNALS)), moment, nth, round(rng.uniform(low, high), 3))


@dataclass
class RoundResult:
    signalled: bool
    code: int | None
    exit_seconds: float | None
    """From the signal to the process's exit (None: not signalled, or hung)."""
    plan_problem: str | None
    strays: int
    """Live processes carrying the plan's tag right after the exit."""
    done: int
    total: int
    left_in_progress: list[str] = field(default_factory=list)
    done_after_signal: int = 0
    """Tasks the run reported done after it was signalled (their turns were not stopped)."""
    events: int = 0
    """Events the run printed: none when a signal ended it in the interpreter's start-up."""
    note: str = ""

    @property
    def complete(self) -> bool:
        return self.plan_problem is None and self.done == self.total


class _Run:
    """A `planeteer run --json` of the epoch's plan in its own process group, its events read as they come."""

    def __init__(self, epoch: Epoch, model: ChaosModel, log: Path) -> None:
        self.epoch = epoch
        self.events: list[dict[str, Any]] = []
        args = [str(planeteer_command()), "run", "--json", "--on-interrupted", "resume", "-j", str(CONCURRENCY)]
        args += ["--provider-base-url", model.base_url, "--model", "chaos-model"]
        args += ["--workdir", str(epoch.repo), "--copilot-home", str(epoch.home), str(epoch.plan_path)]
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                args,
                cwd=epoch.repo,
                env=child_env(PLANETEER_PROVIDER_API_KEY="chaos"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
        self.pidfd = os.pidfd_open(self.process.pid)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.events.append(event)
            if event.get("event") == "task_done":
                at = parse_time(event.get("at"))
                task_id = str(event["task_id"])
                if at is not None and task_id not in self.epoch.done_at:
                    self.epoch.done_at[task_id] = at.timestamp()

    def count(self, kind: str) -> int:
        return sum(event.get("event") == kind for event in list(self.events))

    def done_since(self, wall_time: float) -> int:
        """How many `task_done` events the run stamped after `wall_time` (time.time())."""
        stamps = [parse_time(e.get("at")) for e in list(self.events) if e.get("event") == "task_done"]
        return sum(at is not None and at.timestamp() > wall_time for at in stamps)

    def wait_exit(self, timeout: float) -> bool:
        """Wait until the process has exited (exactly, through its pidfd); False if it has not by then."""
        ready, _, _ = select.select([self.pidfd], [], [], timeout)
        return bool(ready)

    def drain(self) -> None:
        """Wait briefly for the events the exited process printed last."""
        self._reader.join(timeout=2)

    def finish(self) -> None:
        """Reap the process (killing its group if it is still there) and stop reading its output."""
        if not self.wait_exit(0):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._reader.join(timeout=5)
        os.close(self.pidfd)


def run_round(epoch: Epoch, model: ChaosModel, instant: Instant, log: Path) -> RoundResult:
    """Start the run, signal it at `instant`, and measure how it ended and what it left."""
    before = _task_states(epoch.plan_path)
    run = _Run(epoch, model, log)
    try:
        reached = _wait_for_moment(run, model, instant)
        if not reached:
            return _after_exit(run, before, signalled=False, seconds=None)
        time.sleep(instant.delay)
        if run.wait_exit(0):
            return _after_exit(run, before, signalled=False, seconds=None)
        signalled_at, signalled_wall = time.monotonic(), time.time()
        os.killpg(run.process.pid, SIGNALS[instant.signal_name])
        if not run.wait_exit(HANG_SECONDS):
            result = _after_exit(run, before, signalled=True, seconds=None)
            result.note = f"still running {HANG_SECONDS:g} s after the signal: killed"
            return result
        result = _after_exit(run, before, signalled=True, seconds=time.monotonic() - signalled_at)
        result.done_after_signal = run.done_since(signalled_wall)
        return result
    finally:
        run.finish()


def run_to_end(epoch: Epoch, model: ChaosModel, log: Path) -> RoundResult:
    """Run the plan with no signal until it ends by itself."""
    before = _task_states(epoch.plan_path)
    run = _Run(epoch, model, log)
    try:
        if not run.wait_exit(RUN_TIMEOUT):
            result = _after_exit(run, before, signalled=False, seconds=None)
            result.note = f"did not finish within {RUN_TIMEOUT:g} s: killed"
            return result
        return _after_exit(run, before, signalled=False, seconds=None)
    finally:
        run.finish()


def _wait_for_moment(run: _Run, model: ChaosModel, instant: Instant) -> bool:
    """Wait for the instant's moment; False when the run exited first. A moment that never comes counts as
    come after MOMENT_TIMEOUT, so a round always ends.

    A SIGKILLed run's CLI and sleeps can outlive it until this run stops them: its sleeps do not count, and
    model requests count only once this run has started a task."""
    leftovers = set(_sleeps_running(run.epoch.tag))
    baseline: list[int] = []

    def model_requests() -> int:
        if not baseline and run.count("task_started"):
            baseline.append(len(model.log))
        return len(model.log) - baseline[0] if baseline else 0

    conditions: dict[str, Callable[[], bool]] = {
        "start": lambda: True,
        "session start": lambda: run.count("task_started") >= instant.nth,
        "model request": lambda: model_requests() >= instant.nth,
        "sleep tool": lambda: bool(set(_sleeps_running(run.epoch.tag)) - leftovers),
        "task done": lambda: run.count("task_done") >= instant.nth,
    }
    condition = conditions[instant.moment]
    deadline = time.monotonic() + MOMENT_TIMEOUT
    while not condition():
        if run.wait_exit(0.005):
            return False
        if time.monotonic() > deadline:
            break
    return True


def _sleeps_running(tag: str) -> list[int]:
    found = []
    for pid in tagged_processes(tag):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep\0"):
                found.append(pid)
        except OSError:
            continue
    return found


def _task_states(plan_path: Path) -> dict[str, tuple[str, int]]:
    """Each task's status and number of attempts, to tell what a run changed from what it found."""
    return {task.id: (task.status, len(task.attempts)) for task in load_plan(plan_path).tasks}


def _after_exit(run: _Run, before: dict[str, tuple[str, int]], signalled: bool, seconds: float | None) -> RoundResult:
    """What the exited (or hung) run left: its exit code, the plan file, its processes.

    After a clean stop no task the run worked on may be left `in_progress` (it must be saved `interrupted`);
    one the run never touched keeps what an earlier, SIGKILLed run left, for recovery to deal with."""
    code = run.process.poll()
    if code is not None:
        run.drain()
    strays = len(tagged_processes(run.epoch.tag))
    try:
        plan = load_plan(run.epoch.plan_path)
    except Exception as error:
        return RoundResult(signalled, code, seconds, f"the plan file does not load: {error}", strays, 0, 0)
    now = time.time()
    for task in plan.tasks:
        if task.status == "done":
            run.epoch.done_at.setdefault(task.id, now)
    left = [
        task.id
        for task in plan.tasks
        if code == CLEAN_EXIT_CODE
        and task.status == "in_progress"
        and before.get(task.id) != (task.status, len(task.attempts))
    ]
    done = sum(task.status == "done" for task in plan.tasks)
    result = RoundResult(signalled, code, seconds, None, strays, done, len(plan.tasks), left)
    return dataclasses.replace(result, events=len(run.events))
