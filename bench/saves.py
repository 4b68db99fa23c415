"""Figure 3: the cost of one save of a 2,000-task plan."""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.common import BENCH_BRANCH, BENCH_REPOSITORY, Sizes, filesystem_of, plan_dict, random_dag, scratch
from bench.report import Results, ms, p95, progress
from planeteer_action.plan.model import Plan
from planeteer_action.plan.session_ids import session_id_for
from planeteer_action.plan.store import (
    PlanWriter,
    load_plan,
    markdown_path,
    plan_json,
    save_plan,
    write_atomic,
)

_VOCABULARY = (
    "add update refactor endpoint schema migration cache token client server handler test coverage docs error "
    "retry timeout queue worker config flag parser model view route index query field user account billing "
    "report export import validate render layout style build deploy pipeline release version log metric trace"
)
_WORDS = _VOCABULARY.split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def realistic_plan(n: int, seed: int = 7) -> Plan:
    """A plan as a long real run leaves it: descriptions, criteria, dependencies, attempts with session ids, results."""
    rng = random.Random(seed)
    plan_id = "bench-big-plan"
    tasks: list[dict[str, Any]] = []
    stamp = "2026-11-24T10:{:02d}:{:02d}.{:03d}Z"
    for i, base in enumerate(random_dag(n, seed)):
        status = rng.choices(["done", "pending", "failed", "interrupted"], weights=[70, 20, 5, 5])[0]
        task = {
            **base,
            "title": _text(rng, rng.randint(4, 8)).rstrip("."),
            "description": " ".join(_text(rng, rng.randint(8, 16)) for _ in range(rng.randint(2, 5))),
            "acceptanceCriteria": [_text(rng, rng.randint(6, 14)) for _ in range(rng.randint(2, 5))],
            "status": status,
        }
        if status != "pending":
            attempts = []
            count = rng.randint(1, 3)
            for number in range(1, count + 1):
                last = number == count
                outcome = status if last else rng.choice(["failed", "interrupted", "lost"])
                attempt: dict[str, Any] = {
                    "number": number,
                    "sessionId": session_id_for(plan_id, base["id"], number),
                    "reason": "first start" if number == 1 else "retry after failure",
                    "startedAt": stamp.format(i % 60, number, rng.randint(0, 999)),
                    "endedAt": stamp.format(i % 60, number + 5, rng.randint(0, 999)),
                    "outcome": outcome,
                }
                if outcome == "failed":
                    attempt["error"] = _text(rng, rng.randint(10, 20))
                attempts.append(attempt)
            task["attempts"] = attempts
            task["sessionId"] = attempts[-1]["sessionId"]
            task["agentResult"] = " ".join(_text(rng, rng.randint(8, 14)) for _ in range(rng.randint(3, 6)))
        tasks.append(task)
    data = plan_dict(plan_id, tasks, name="A big plan")
    data["execution"] = {
        "repository": BENCH_REPOSITORY,
        "branch": BENCH_BRANCH,
        "workingDirectory": "/home/runner/work/app/app",
        "model": "gpt-5",
        "startedAt": "2026-11-24T10:00:00.000Z",
        "recoveries": [
            {"at": "2026-11-24T11:00:00.000Z", "choice": "resume", "resumed": [t["id"] for t in tasks[:8]]},
        ],
    }
    return Plan.model_validate(data)


def _timed(runs: int, call: Callable[[], object]) -> list[float]:
    call()  # warm: first-call costs (imports, page faults) are not a save's cost
    values = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        values.append(time.perf_counter() - started)
    return values


def figure_save(sizes: Sizes, results: Results) -> None:
    fig = "3"
    progress(f"fig 3: {sizes.save_runs} saves of a {sizes.save_tasks}-task plan")
    plan = realistic_plan(sizes.save_tasks)
    runs = sizes.save_runs
    with scratch("save") as folder:
        path = folder / "big-plan.json"
        save_plan(plan, path)
        if load_plan(path).model_dump() != plan.model_dump():
            raise RuntimeError("the saved plan does not load back equal to itself")
        json_size = path.stat().st_size
        md_size = markdown_path(path).stat().st_size
        fs = filesystem_of(folder)
        rng = random.Random(sizes.dag_seed)

        def one_task_changed(writer: PlanWriter) -> Callable[[], None]:
            def change_and_save() -> None:
                """What the executor does: one task's state changes, then the plan is saved."""
                task = plan.tasks[rng.randrange(len(plan.tasks))]
                task.agent_result = f"summary {rng.random()}"
                plan.touch()
                writer.save(plan, {task.id})

            return change_and_save

        # During a run the Markdown view is refreshed at most once a second, so a state change waits for
        # the plan JSON alone; a save with the view as well is what a second's first change costs.
        json_only = PlanWriter(path, markdown_interval=math.inf)
        json_only.save(plan)
        incremental = _timed(runs, one_task_changed(json_only))
        if path.read_bytes() != plan_json(plan):
            raise RuntimeError("an incremental save differs from a full serialisation")
        with_view = PlanWriter(path)
        with_view.save(plan)
        incremental_view = _timed(runs, one_task_changed(with_view))
        full = _timed(min(runs, 20), lambda: save_plan(plan, path))
        parts = min(runs, 10)  # the breakdown: fewer runs, it only says where the time goes
        serialize = _timed(parts, lambda: plan_json(plan))
        render_all = _timed(parts, lambda: PlanWriter(path).render(plan))
        text = plan_json(plan)
        write_json = _timed(parts, lambda: write_atomic(path, text))
    statuses = {s: sum(t.status == s for t in plan.tasks) for s in ("done", "pending", "failed", "interrupted")}
    attempts = sum(len(t.attempts) for t in plan.tasks)
    results.add(
        fig,
        f"plan: {sizes.save_tasks} tasks ({', '.join(f'{v} {k}' for k, v in statuses.items())}), {attempts} attempts",
        f"JSON {json_size / 1e6:.2f} MB + MD {md_size / 1e6:.2f} MB",
    )
    med = statistics.median(incremental)
    label = f"save after one task changed: the plan JSON (atomic, fsync; {fs}): median"
    results.add(fig, label, ms(med), "≤ 10 ms", med <= 0.010)
    results.add(fig, f"  same: p95 of {runs}", ms(p95(incremental)), "≤ 10 ms", p95(incremental) <= 0.010)
    both = statistics.median(incremental_view)
    label = "  with the Markdown view too (at most once a second in a run): median / p95"
    results.add(fig, label, f"{ms(both)} / {ms(p95(incremental_view))}")
    results.add(fig, "full save, every task serialised (a recovery or retry): median", ms(statistics.median(full)))
    results.add(fig, "  serialise the whole plan (plan_json): median", ms(statistics.median(serialize)))
    results.add(fig, "  render JSON and Markdown afresh: median", ms(statistics.median(render_all)))
    results.add(fig, "  atomic write + 2 fsyncs of the JSON: median", ms(statistics.median(write_json)))
