"""Figure 2: per-task overhead on the real Copilot CLI, over the model's own time.

The model's time is measured inside the server (`TimedModel`); the SDK calls of each turn are timed through
`CopilotAgent`'s `on_sdk_call` hook, so the table can split a turn into its steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import MODEL, Sizes, TimedSaves, copilot_cli, make_repo, plan_dict, scratch, task_dict
from bench.report import Results, ms, progress, secs
from planeteer_action.copilot.agent import CopilotAgent, SdkCallTiming
from planeteer_action.copilot.offline_model import OfflineModelServer, provider_config
from planeteer_action.copilot.offline_requests import find_task_id
from planeteer_action.copilot.runtime import tagged_processes
from planeteer_action.engine.events import Event, TaskDone, TaskStarted
from planeteer_action.engine.executor import Executor, ExecutorOptions
from planeteer_action.plan.model import Plan
from planeteer_action.plan.session_ids import session_id_for
from planeteer_action.plan.store import save_plan

FIG = "2"
Span = tuple[float, float]
_TURN_CALLS = ("get_session_metadata", "create_session", "send", "disconnect")
"""The SDK calls of a turn that creates its session, in order."""


class TimedModel(OfflineModelServer):
    """The offline model server, also recording how long each answer took inside the server (delays included)."""

    def __init__(self, script: Mapping[str, Sequence[dict[str, Any]]]) -> None:
        super().__init__(script=script)
        self.timings: list[tuple[str | None, float, float]] = []
        self._timing_lock = threading.Lock()

    def answer(self, body: Mapping[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return super().answer(body)
        finally:
            ended = time.perf_counter()
            with self._timing_lock:
                self.timings.append((find_task_id(body.get("messages") or []), started, ended))


@dataclass
class SdkSpans:
    """The agent's `on_sdk_call` hook: (start, end) of each SDK call, by session id and call."""

    spans: dict[str, dict[str, Span]] = field(default_factory=dict)

    def record(self, timing: SdkCallTiming) -> None:
        self.spans.setdefault(timing.session_id, {})[timing.call] = (timing.started, timing.ended)


@dataclass
class OverheadRun:
    wall: float
    model: float
    tasks: int
    concurrency: int
    per_task: list[float]
    phases: dict[str, list[float]]
    saves: list[float]
    cli_cpu: float
    own_cpu: float

    @property
    def mean_overhead(self) -> float:
        """The issue's formula: (wall − Σ model time) / N. At -j 1 it is each task's own overhead."""
        return (self.wall - self.model) / self.tasks


def turn_phases(calls: Mapping[str, Span], task: Span, model: Span) -> dict[str, float]:
    """One turn split into its steps, from its task's (start, done), its SDK calls and its model request."""
    begin, end = task
    meta, create, send, disc = (calls[name] for name in _TURN_CALLS)
    return {
        "task started → session lookup": meta[0] - begin,
        "session lookup (get_session_metadata)": meta[1] - meta[0],
        "create_session": create[1] - create[0],
        "send": send[1] - send[0],
        "send returned → model request (CLI)": model[0] - send[1],
        "model answered → turn idle (CLI, events)": disc[0] - model[1],
        "disconnect": disc[1] - disc[0],
        "plan save + done event": end - disc[1],
    }


async def overhead_run(
    agent: CopilotAgent,
    sdk: SdkSpans,
    model: TimedModel,
    repo: Path,
    plan_id: str,
    task_ids: list[str],
    concurrency: int,
) -> OverheadRun:
    plan_path = repo / ".planeteer" / f"{plan_id}.json"
    plan = Plan.model_validate(plan_dict(plan_id, [task_dict(t) for t in task_ids]))
    save_plan(plan, plan_path)
    marks: dict[str, dict[str, float]] = {t: {} for t in task_ids}
    saver = TimedSaves(plan_path)

    def listen(event: Event) -> None:
        if isinstance(event, TaskStarted | TaskDone):
            marks[event.task_id]["started" if isinstance(event, TaskStarted) else "done"] = time.perf_counter()

    before = len(model.timings)
    options = ExecutorOptions(working_directory=repo, concurrency=concurrency, quiet_timeout=120)
    executor = Executor(plan, agent, options, saver, [listen])
    cli_cpu, own_cpu = cpu_seconds(agent.process_tag), time.process_time()
    started = time.perf_counter()
    result = await executor.run()
    wall = time.perf_counter() - started
    cli_cpu, own_cpu = cpu_seconds(agent.process_tag) - cli_cpu, time.process_time() - own_cpu
    saver.close()
    if result.status != "complete":
        raise RuntimeError(f"the overhead run ended {result.status}: {result.counts}")
    answers = [a for a in model.timings[before:] if a[0] in marks]
    if len(answers) != len(task_ids):
        raise RuntimeError(f"expected one model request per task, the server saw {len(answers)} for {len(task_ids)}")
    answer_of = {a[0]: (a[1], a[2]) for a in answers}
    per_task: list[float] = []
    phases: dict[str, list[float]] = {}
    for task_id in task_ids:
        (m0, m1), begin, end = answer_of[task_id], marks[task_id]["started"], marks[task_id]["done"]
        per_task.append(end - begin - (m1 - m0))
        calls = sdk.spans.get(session_id_for(plan_id, task_id, 1), {})
        if set(_TURN_CALLS) <= set(calls):
            for name, value in turn_phases(calls, (begin, end), (m0, m1)).items():
                phases.setdefault(name, []).append(value)
    model_time = sum(m1 - m0 for m0, m1 in answer_of.values())
    return OverheadRun(wall, model_time, len(task_ids), concurrency, per_task, phases, saver.waits, cli_cpu, own_cpu)


def cpu_seconds(tag: str) -> float:
    """User + system CPU time so far of the live processes carrying this Copilot runtime's tag (the CLI)."""
    total = 0
    for pid in tagged_processes(tag):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def report_run(results: Results, run: OverheadRun, delay: float) -> None:
    n, label = run.tasks, f"-j {run.concurrency}, {run.tasks} tasks"
    results.add(
        FIG,
        f"{label}: wall / Σ model time (server-side, {ms(delay)} delay each)",
        f"{secs(run.wall)} / {secs(run.model)}",
    )
    mean, median = run.mean_overhead, statistics.median(run.per_task)
    results.add(FIG, f"{label}: overhead per task, mean (wall − Σmodel) / N", ms(mean), "≤ 100 ms", mean <= 0.100)
    results.add(
        FIG,
        f"{label}: each task's own overhead, median of (turn − its model time)",
        ms(median),
        "≤ 100 ms",
        median <= 0.100,
    )
    results.add(
        FIG,
        f"{label}: CPU per task: Copilot CLI / this process (executor, SDK, model)",
        f"{ms(run.cli_cpu / n)} / {ms(run.own_cpu / n)}",
    )
    if run.concurrency == 1:
        for name, values in run.phases.items():
            results.add(FIG, f"  median: {name}", ms(statistics.median(values)))
        saves = f"{len(run.saves) / n:.1f}, {ms(statistics.median(run.saves))}"
        results.add(FIG, "  plan saves per task, median save", saves)


def figure_overhead(sizes: Sizes, results: Results) -> None:
    cli = copilot_cli()
    n, delay = sizes.overhead_tasks, sizes.overhead_model_delay
    groups = {c: [f"c{c}-t{i:02d}" for i in range(n)] for c in sizes.overhead_concurrencies}
    script = {t: [{"delay": delay, "text": "done"}] for ids in groups.values() for t in ids}
    script["warm-up"] = [{"delay": delay, "text": "done"}]

    async def measure() -> None:
        with scratch("overhead") as folder:
            repo = make_repo(folder / "repo")
            (repo / ".planeteer").mkdir()
            model, sdk = TimedModel(script), SdkSpans()
            provider = provider_config(model.start())
            agent = CopilotAgent(cli, folder / "copilot-home", MODEL, provider, on_sdk_call=sdk.record)
            try:
                started = time.perf_counter()
                await agent.start()
                results.add(FIG, "CLI start (once per run, not per task)", ms(time.perf_counter() - started))
                warm = await overhead_run(agent, sdk, model, repo, "bench-warm", ["warm-up"], 1)
                results.add(FIG, "first turn on a fresh CLI: overhead (not in the figures below)", ms(warm.per_task[0]))
                for conc, ids in groups.items():
                    progress(f"fig 2: {n} one-answer tasks on the real CLI at -j {conc}")
                    run = await overhead_run(agent, sdk, model, repo, f"bench-overhead-j{conc}", ids, conc)
                    report_run(results, run, delay)
            finally:
                await agent.stop()
                model.stop()

    asyncio.run(measure())
