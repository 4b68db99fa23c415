"""Figure 5: recovery inspection with 500 and 5,000 sessions in the Copilot home."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.common import (
    BENCH_BRANCH,
    BENCH_REPOSITORY,
    MODEL,
    Sizes,
    copilot_cli,
    make_repo,
    plan_dict,
    scratch,
    task_dict,
)
from bench.report import Results, ms, progress, secs
from planeteer_action.copilot.agent import CopilotAgent
from planeteer_action.copilot.offline_model import OfflineModelServer, provider_config
from planeteer_action.engine.agent import TurnRequest
from planeteer_action.engine.recovery import inspect
from planeteer_action.plan.model import Plan
from planeteer_action.plan.session_ids import session_id_for

FIG = "5"
_T = TypeVar("_T")


def noop(activity: str) -> None:
    """A turn's activity, which the seed turn does not show."""


async def seed_session(folder: Path, repo: Path) -> Path:
    """One real session made by the real CLI, with one turn, in a repository with a GitHub remote."""
    model = OfflineModelServer(script={"seed": [{"text": "done"}]})
    home = folder / "seed-home"
    agent = CopilotAgent(copilot_cli(), home, MODEL, provider_config(model.start()))
    session_id = "planeteer-00000000-seed-a1"
    try:
        await agent.start()
        prompt = "Planeteer task id: seed\nSay done."
        await agent.run_turn(TurnRequest(session_id, "bench seed", prompt, "create", repo, 60, noop))
    finally:
        await agent.stop()
        model.stop()
    return home / "session-state" / session_id


def clone_sessions(source: Path, target_root: Path, session_ids: Sequence[str]) -> list[str]:
    """Copy the session folder under each new id, rewriting the id in every file that holds it."""
    old = source.name.encode()
    files = [p for p in sorted(source.rglob("*")) if p.is_file()]
    holding = {p: p.read_bytes() for p in files if old in p.read_bytes()}
    dirs = sorted({p.relative_to(source) for p in source.rglob("*") if p.is_dir()})
    for session_id in session_ids:
        folder = target_root / session_id
        folder.mkdir(parents=True)
        for sub in dirs:
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for path in files:
            destination = folder / path.relative_to(source)
            if path in holding:
                destination.write_bytes(holding[path].replace(old, session_id.encode()))
            else:
                shutil.copyfile(path, destination)
    return sorted(str(p.relative_to(source)) for p in holding)


def recovery_plan(plan_id: str, n: int, unfinished: int) -> Plan:
    """n tasks each holding its session; the first `unfinished` were interrupted, the rest are done."""
    tasks = []
    for i in range(n):
        task_id = f"t{i:05d}"
        session_id = session_id_for(plan_id, task_id, 1)
        outcome = "interrupted" if i < unfinished else "done"
        attempt = {
            "number": 1,
            "sessionId": session_id,
            "reason": "first start",
            "startedAt": "2026-11-24T10:00:00.000Z",
            "endedAt": "2026-11-24T10:05:00.000Z",
            "outcome": outcome,
        }
        tasks.append(task_dict(task_id, status=outcome, sessionId=session_id, attempts=[attempt]))
    return Plan.model_validate(plan_dict(plan_id, tasks))


@dataclass
class HomeTimes:
    """What recovery's inspection costs on one Copilot home, and what the CLI listed there."""

    start: float
    cold: float
    warm: list[float]
    list_all: float
    one_lookup: float
    listed: int
    filtered: int
    elsewhere: int
    resumable: int
    orphans: int


async def timed(call: Awaitable[_T]) -> tuple[_T, float]:
    started = time.perf_counter()
    value = await call
    return value, time.perf_counter() - started


async def measure_home(cli: Path, home: Path, plan: Plan, some_session: str) -> HomeTimes:
    """Start a fresh CLI on `home` and time `inspect()` (first and again), one listing and one lookup."""
    agent = CopilotAgent(cli, home)
    try:
        _, start = await timed(agent.start())
        report, cold = await timed(inspect(plan, agent, BENCH_REPOSITORY, BENCH_BRANCH))
        warm = [(await timed(inspect(plan, agent, BENCH_REPOSITORY, BENCH_BRANCH)))[1] for _ in range(3)]
        listed, list_all = await timed(agent.list_sessions(None, None))
        filtered = await agent.list_sessions(BENCH_REPOSITORY, BENCH_BRANCH)
        elsewhere = await agent.list_sessions(BENCH_REPOSITORY, "no-such-branch")
        _, one_lookup = await timed(agent.get_session(some_session))
    finally:
        await agent.stop()
    resumable = sum(u.state == "resumable" for u in report.unfinished)
    counts = (len(listed), len(filtered), len(elsewhere))
    return HomeTimes(start, cold, warm, list_all, one_lookup, *counts, resumable, len(report.orphans))


def report_home(results: Results, n: int, unfinished: int, times: HomeTimes, cloned: float) -> None:
    if times.listed != n or times.filtered != n or times.elsewhere:
        raise RuntimeError(
            f"the CLI listed {times.listed} sessions ({times.filtered} on {BENCH_BRANCH}, {times.elsewhere}"
            f" on another branch) of {n} cloned"
        )
    if times.resumable != unfinished or times.orphans:
        raise RuntimeError(f"inspect found {times.resumable} resumable and {times.orphans} orphans")
    label = f"{n} sessions"
    listing = f"{times.listed} / {times.filtered} / {times.elsewhere}"
    results.add(FIG, f"{label}: listed by the CLI (all / repo+branch filter / other branch)", listing)
    results.add(
        FIG,
        f"{label}: inspect() first call on a fresh CLI ({times.resumable} resumable)",
        ms(times.cold),
        "≤ 1 s" if n <= 500 else "(growth)",
        times.cold <= 1.0 if n <= 500 else None,
    )
    results.add(FIG, f"{label}:   inspect() again, median of 3", ms(statistics.median(times.warm)))
    results.add(FIG, f"{label}:   of which list_sessions() alone", ms(times.list_all))
    results.add(FIG, f"{label}:   one get_session() lookup", ms(times.one_lookup))
    results.add(FIG, f"{label}: CLI start (separate)", ms(times.start))
    results.add(FIG, f"{label}: cloning time (setup, not measured)", secs(cloned))


def figure_recovery(sizes: Sizes, results: Results) -> None:
    cli = copilot_cli()
    plan_id = "bench-recovery"

    async def measure() -> None:
        with scratch("recovery") as folder:
            repo = make_repo(folder / "repo")
            progress("fig 5: one real session through the real CLI")
            source = await seed_session(folder, repo)
            home = folder / "copilot-home"
            state = home / "session-state"
            state.mkdir(parents=True)
            made = 0
            for n in sizes.recovery_sessions:
                ids = [session_id_for(plan_id, f"t{i:05d}", 1) for i in range(made, n)]
                progress(f"fig 5: cloning the session folder to {n} sessions")
                started = time.perf_counter()
                holding = clone_sessions(source, state, ids)
                cloned = time.perf_counter() - started
                made = n
                plan = recovery_plan(plan_id, n, sizes.recovery_unfinished)
                times = await measure_home(cli, home, plan, ids[-1])
                report_home(results, n, sizes.recovery_unfinished, times, cloned)
            results.note(
                f"fig 5: the cloned folders rewrite the session id in {', '.join(holding)};"
                f" the home has {'a' if (home / 'session-store.db').exists() else 'no'} session-store.db after"
                " listing: the CLI lists from the session-state folders, no index rebuild was needed"
            )

    asyncio.run(measure())
