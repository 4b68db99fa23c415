"""What a workflow run shows: log lines and a log group per task, error annotations, outputs, job summary."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import IO, Any

from actions_toolkit import core

from planeteer_action.engine.events import (
    Event,
    RunFinished,
    RunStarted,
    SessionLost,
    TaskBlocked,
    TaskDone,
    TaskFailed,
    TaskInterrupted,
)
from planeteer_action.engine.wording import describe, format_duration
from planeteer_action.plan.model import Plan
from planeteer_action.plan.operations import count_statuses, shown_statuses, time_spent, unfinished

# The runner shows about 10 annotations of each kind per step; past that they are dropped silently.
MAX_ERROR_ANNOTATIONS = 10
# A step's summary over 1 MiB is dropped whole; stay well under it.
MAX_SUMMARY_ROWS = 500


class ActionLog:
    """Run-level lines go straight to the log; each task's lines are grouped and printed when it ends,
    since groups of tasks running in parallel cannot interleave."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self._buffers: dict[str, list[str]] = {}
        self._errors = 0

    def __call__(self, event: Event) -> None:
        line = f"{event.at} {describe(event)}"
        task_id = getattr(event, "task_id", None)
        if task_id is None or isinstance(event, RunStarted | RunFinished):
            self._write(line)
            return
        self._buffers.setdefault(task_id, []).append(line)
        if isinstance(event, TaskDone | TaskFailed | TaskInterrupted | TaskBlocked | SessionLost):
            self._write(line)
        if isinstance(event, TaskDone | TaskFailed | TaskInterrupted):
            status = {TaskDone: "done", TaskFailed: "failed", TaskInterrupted: "interrupted"}[type(event)]
            self._write(f"::group::task {task_id} ({status})")
            for buffered in self._buffers.pop(task_id, []):
                self._write(buffered)
            self._write("::endgroup::")
        if isinstance(event, TaskFailed):
            self._errors += 1
            if self._errors <= MAX_ERROR_ANNOTATIONS:
                core.error(event.error, title=f"Task {task_id} failed")
            elif self._errors == MAX_ERROR_ANNOTATIONS + 1:
                core.warning("more tasks failed than the workflow page shows annotations for: see the job summary")

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()


def run_status(plan: Plan) -> str:
    counts = count_statuses(plan)
    if counts["done"] == len(plan.tasks):
        return "complete"
    if unfinished(counts):
        return "interrupted"
    if counts["failed"] or counts["blocked"]:
        return "failed"
    return "incomplete"


def outputs(plan: Plan, plan_path: str, checkpoint: str | None) -> dict[str, str]:
    counts = count_statuses(plan)
    return {
        "status": run_status(plan),
        "done": str(counts["done"]),
        "failed": str(counts["failed"]),
        "blocked": str(counts["blocked"]),
        "interrupted": str(unfinished(counts)),  # what a re-run resumes: a killed step leaves tasks in_progress
        "session-ids": json.dumps({t.id: t.session_id for t in plan.tasks if t.session_id}),
        "plan-path": plan_path,
        "checkpoint-artifact": checkpoint or "",
    }


def set_outputs(values: dict[str, str]) -> None:
    for name, value in values.items():
        core.set_output(name, value)


def summary_markdown(plan: Plan, report: dict[str, Any], warnings: list[str], run_url: Callable[[int], str]) -> str:
    """The job summary; `run_url` links a run id to its page (GHES-aware)."""
    status = run_status(plan)
    counts = count_statuses(plan)
    icon = {"complete": "✅", "failed": "❌", "interrupted": "⏸️"}.get(status, "•")
    tally = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    lines = [f"## {icon} Planeteer: {plan.name} — {status}", "", f"{len(plan.tasks)} tasks: {tally}.", ""]
    restored = report.get("restored")
    if restored:
        branches = restored.get("branches") or []
        work = f"{len(branches)} branch(es)" if branches else f"{len(restored['changed_paths'])} changed file(s)"
        lines.append(
            f"**Restored** checkpoint `{restored['name']}` from the {restored['origin']} of "
            f"[run {restored['run_id']}]({run_url(restored['run_id'])}) "
            f"attempt {restored['attempt']} (save {restored['sequence']}): {len(restored['sessions'])} session(s), "
            f"{work} put back."
        )
    for recovery in (plan.execution.recoveries if plan.execution else [])[-1:]:
        if report.get("recovered"):
            parts = [f"**Recovery** ({recovery.choice}):"]
            if recovery.resumed:
                parts.append(f"resumed {', '.join(recovery.resumed)} in their own sessions;")
            if recovery.restarted:
                parts.append(f"started fresh {', '.join(recovery.restarted)};")
            if recovery.deleted_sessions:
                parts.append(f"deleted {len(recovery.deleted_sessions)} session(s).")
            parts += [
                f"{task_id}'s rules changed since its session started: {'; '.join(changes)}."
                for task_id, changes in recovery.rules_changed.items()
            ]
            lines.append(" ".join(parts))
    if report.get("checkpoint"):
        lines.append(f"**Checkpoint:** `{report['checkpoint']}` (workflow artifact; a re-run continues from it).")
    for warning in warnings:
        lines.append(f"> [!WARNING]\n> {warning}")
    denied = sum(task.denied_requests for task in plan.tasks)
    if denied:
        lines.append(f"**Denied:** {denied} tool request(s) the rules refused (they never ran); see the Denied column.")
    # The Denied column appears only when a request was denied, so a run without rules reads as before.
    extra = " Denied |" if denied else ""
    lines += ["", f"| Task | Status | Duration | Session | Attempts |{extra}", "| --- " * (6 if denied else 5) + "|"]
    shown = shown_statuses(plan)
    for task in plan.tasks[:MAX_SUMMARY_ROWS]:
        history = "; ".join(f"#{a.number} {a.reason}: {a.outcome}" for a in task.attempts)
        lines.append(
            f"| {_cell(task.id)} | {shown[task.id]} | {format_duration(time_spent(task)) if task.attempts else ''} | "
            f"`{task.session_id or ''}` | {_cell(history)} |" + (f" {task.denied_requests or ''} |" if denied else "")
        )
    if len(plan.tasks) > MAX_SUMMARY_ROWS:
        lines.append(f"\n_{len(plan.tasks) - MAX_SUMMARY_ROWS} more tasks not shown: `planeteer status` lists all._")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]
