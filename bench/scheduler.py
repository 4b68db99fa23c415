"""Figure 1: the scheduler's makespan over an honest lower bound, with an in-memory agent."""

from __future__ import annotations

import asyncio
import heapq
import statistics
import time
from collections.abc import Collection, Mapping

from bench.common import REPO, Sizes, TimedSaves, plan_dict, random_dag, scratch
from bench.report import Results, ms, progress, secs
from planeteer_action.engine.agent import SessionInfo, TurnRequest, TurnResult
from planeteer_action.engine.executor import Executor, ExecutorOptions, PlanSaver
from planeteer_action.plan.graph import chain_lengths, critical_path_length
from planeteer_action.plan.model import Plan


class FixedTimeAgent:
    """The Agent protocol in memory: every turn takes exactly `seconds` (asyncio.sleep), nothing else."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.turns: list[tuple[float, float]] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def run_turn(self, request: TurnRequest) -> TurnResult:
        started = time.perf_counter()
        await asyncio.sleep(self.seconds)
        self.turns.append((started, time.perf_counter()))
        return TurnResult(summary="ok")

    async def get_session(self, session_id: str) -> SessionInfo | None:
        return None

    async def list_sessions(self, repository: str | None, branch: str | None) -> list[SessionInfo]:
        return []

    async def user_messages(self, session_id: str) -> list[str] | None:
        return None

    async def delete_session(self, session_id: str) -> None:
        return None


def longest_path_first(plan: Plan) -> dict[str, int]:
    """The executor's policy as a `greedy_makespan` priority: the longest chain of dependents first."""
    return {task_id: -length for task_id, length in chain_lengths(plan).items()}


def greedy_makespan(plan: Plan, seconds: float, concurrency: int, priority: Mapping[str, int] | None = None) -> float:
    """List scheduling simulated with zero overhead: ready tasks start in plan order, or by `priority`
    (lower first, plan order breaking ties), up to `concurrency` at once."""
    deps = {t.id: set(t.depends_on) for t in plan.tasks}
    position = {t.id: i for i, t in enumerate(plan.tasks)}
    waiting = sorted(position, key=lambda t: ((priority or {}).get(t, 0), position[t]))
    done: set[str] = set()
    running: list[tuple[float, str]] = []
    now = 0.0
    while waiting or running:
        for task_id in list(waiting):
            if len(running) >= concurrency:
                break
            if deps[task_id] <= done:
                waiting.remove(task_id)
                heapq.heappush(running, (now + seconds, task_id))
        now, finished = heapq.heappop(running)
        done.add(finished)
        while running and running[0][0] <= now + 1e-12:
            done.add(heapq.heappop(running)[1])
    return now


class NoSaves:
    """The scheduler alone: saves cost nothing."""

    async def save(self, plan: Plan, changed: Collection[str] | None) -> None:
        return None

    def save_blocking(self, plan: Plan, changed: Collection[str] | None) -> None:
        return None


async def run_schedule(plan: Plan, agent: FixedTimeAgent, concurrency: int, saver: PlanSaver) -> float:
    executor = Executor(plan, agent, ExecutorOptions(working_directory=REPO, concurrency=concurrency), saver)
    started = time.perf_counter()
    result = await executor.run()
    makespan = time.perf_counter() - started
    if result.status != "complete":
        raise RuntimeError(f"the scheduler run ended {result.status}: {result.counts}")
    return makespan


def figure_scheduler(sizes: Sizes, results: Results) -> None:
    n, conc, turn = sizes.dag_tasks, sizes.dag_concurrency, sizes.dag_turn_seconds
    tasks = random_dag(n, sizes.dag_seed)
    plan = Plan.model_validate(plan_dict("bench-dag", tasks))
    critical = critical_path_length(plan, {t.id: turn for t in plan.tasks})
    work = n * turn / conc
    bound = max(critical, work)
    ideal = greedy_makespan(plan, turn, conc)
    edges = sum(len(t["dependsOn"]) for t in tasks)
    fig = "1"
    results.add(fig, f"DAG: {n} tasks, {edges} edges (seed {sizes.dag_seed}), -j {conc}, turn {ms(turn)}", "")
    results.add(fig, "lower bound max(critical path, work/concurrency)", f"{secs(bound)}")
    results.add(fig, "  critical path / total work ÷ concurrency", f"{secs(critical)} / {secs(work)}")
    results.add(fig, "  zero-overhead schedule, plan order", f"{secs(ideal)} ({ideal / bound:.3f}×)")
    best = greedy_makespan(plan, turn, conc, longest_path_first(plan))
    results.add(
        fig,
        "  zero-overhead schedule, longest chain first (the executor's policy)",
        f"{secs(best)} ({best / bound:.3f}×)",
    )

    progress(f"fig 1: {n}-task DAG at -j {conc}, no saves")
    agent = FixedTimeAgent(turn)
    plan = Plan.model_validate(plan_dict("bench-dag", tasks))
    makespan = asyncio.run(run_schedule(plan, agent, conc, NoSaves()))
    ratio = makespan / bound
    results.add(fig, "makespan, no saves (scheduler alone)", secs(makespan))
    results.add(fig, "makespan / lower bound (scheduler alone)", f"{ratio:.3f}", "≤ 1.05", ratio <= 1.05)
    results.add(fig, "  makespan / zero-overhead schedule of the same policy", f"{makespan / best:.3f}")
    late = statistics.mean(end - start - turn for start, end in agent.turns)
    results.add(fig, "  asyncio.sleep overrun per turn (timer granularity), mean", ms(late))
    instant = asyncio.run(
        run_schedule(Plan.model_validate(plan_dict("bench-dag", tasks)), FixedTimeAgent(0), conc, NoSaves())
    )
    results.add(fig, "  same DAG with 0 s turns: the executor's own bookkeeping", ms(instant))

    progress(f"fig 1: {n}-task DAG at -j {conc}, real save_plan after every change")
    with scratch("dag") as folder:
        path = folder / "bench-dag.json"
        saver = TimedSaves(path)
        agent = FixedTimeAgent(turn)
        plan = Plan.model_validate(plan_dict("bench-dag", tasks))
        makespan = asyncio.run(run_schedule(plan, agent, conc, saver))
        saver.close()
        saves = saver.waits
    ratio = makespan / bound
    results.add(fig, "makespan, saving after every change (as `planeteer run`)", secs(makespan))
    results.add(fig, "makespan / lower bound (with real saves)", f"{ratio:.3f}", "≤ 1.05", ratio <= 1.05)
    results.add(
        fig,
        "  saves during that run: count, total wait, median wait",
        f"{len(saves)}, {secs(sum(saves))}, {ms(statistics.median(saves))}",
    )
