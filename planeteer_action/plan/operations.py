"""What people ask of a plan outside a run: its status tally and summary, and putting tasks back for a retry.

The tally is the one count of task statuses that every view and output uses. Its rule: each task counts
under the status it shows — `blocked` for a task waiting on a failed dependency, otherwise its own status —
and `in_progress` stays `in_progress`, because while a run owns the plan it means running. Once no run owns
it, an `in_progress` task is one a crash cut off: `unfinished` counts it with the interrupted ones, the same
set the next run's recovery picks up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from planeteer_action.errors import PlaneteerError
from planeteer_action.plan.graph import blocked_tasks
from planeteer_action.plan.lock import PlanLock
from planeteer_action.plan.model import Plan, Task, parse_time, utc_now
from planeteer_action.plan.store import load_plan, save_plan

# Every status a task can show, in the order counts are written.
SHOWN_STATUSES = ("done", "failed", "blocked", "interrupted", "in_progress", "pending")
# What a task must be for `retry` to put it back.
RETRYABLE = ("failed", "interrupted", "in_progress")


def shown_statuses(plan: Plan) -> dict[str, str]:
    """Each task's status as shown: `blocked` when a dependency failed, else its own."""
    blocked = blocked_tasks(plan)
    return {task.id: "blocked" if task.id in blocked else task.status for task in plan.tasks}


def tally(statuses: Iterable[str]) -> dict[str, int]:
    """How many of each shown status, every status present (zero or not), in `SHOWN_STATUSES` order."""
    counts = dict.fromkeys(SHOWN_STATUSES, 0)
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


def count_statuses(plan: Plan) -> dict[str, int]:
    return tally(shown_statuses(plan).values())


def unfinished(counts: dict[str, int]) -> int:
    """Tasks the next run picks up where they stopped: interrupted ones and those a crash left in progress."""
    return counts.get("interrupted", 0) + counts.get("in_progress", 0)


def time_spent(task: Task) -> float:
    """Seconds across the task's attempts that have both ends recorded."""
    total = 0.0
    for attempt in task.attempts:
        start, end = parse_time(attempt.started_at), parse_time(attempt.ended_at)
        if start is not None and end is not None:
            total += (end - start).total_seconds()
    return total


def status_summary(plan: Plan) -> dict[str, Any]:
    """What `planeteer status --json` prints: the tally, each task as shown, and the recovery decisions."""
    shown = shown_statuses(plan)
    counts = tally(shown.values())
    execution = plan.execution
    return {
        "planId": plan.id,
        "name": plan.name,
        "complete": counts["done"] == len(plan.tasks),
        "counts": {status: n for status, n in counts.items() if n},
        "tasks": [
            {
                "id": task.id,
                "title": task.title,
                "status": shown[task.id],
                "sessionId": task.session_id,
                "commit": task.commit,
                "attempts": [a.to_json_dict() for a in task.attempts],
                "durationSeconds": round(time_spent(task), 3),
                "deniedRequests": task.denied_requests,
                "result": task.agent_result,
            }
            for task in plan.tasks
        ],
        "recoveries": [r.to_json_dict() for r in execution.recoveries] if execution else [],
    }


def close_attempt(task: Task, outcome: Literal["interrupted", "lost", "superseded"]) -> None:
    """End the task's open attempt (running, or interrupted and so resumable) as `outcome`; others stay."""
    attempt = task.current_attempt
    if attempt is None:
        return
    if attempt.outcome in ("running", "interrupted"):
        attempt.outcome = outcome
        attempt.ended_at = attempt.ended_at or utc_now()


def reset_for_retry(plan: Plan, task_ids: Sequence[str]) -> set[str]:
    """Put failed or interrupted tasks back to pending, history kept; returns the tasks no longer blocked.

    Checks every id before changing anything, so a refused retry leaves the plan as it was.
    """
    known = {task.id for task in plan.tasks}
    for task_id in task_ids:
        if task_id not in known:
            raise PlaneteerError(
                f"no task {task_id!r} in plan {plan.id!r}: `planeteer status` on the plan lists the ids"
            )
        status = plan.task(task_id).status
        if status not in RETRYABLE:
            raise PlaneteerError(f"task {task_id!r} is {status}, not failed or interrupted: nothing to retry")
    blocked_before = blocked_tasks(plan)
    for task_id in task_ids:
        task = plan.task(task_id)
        close_attempt(task, "superseded")
        task.status = "pending"
        task.agent_result = None
    return blocked_before - blocked_tasks(plan)


def retry_tasks(path: Path, task_ids: Sequence[str]) -> set[str]:
    """`reset_for_retry` on the plan file, under its lock and on the plan as it is under the lock.

    Refused (PlanLocked) while a run owns the plan: the run would overwrite the reset with its own state.
    """
    load_plan(path)  # a bad plan is refused before the lock file is written
    with PlanLock(path).held():
        plan = load_plan(path)
        unblocked = reset_for_retry(plan, task_ids)
        plan.touch()
        save_plan(plan, path)
    return unblocked
