"""Picking up what an earlier run left unfinished: inspect the plan and the session store, then apply a choice.

A task left `in_progress` (a crash) or `interrupted` (a clean stop) is *resumable* when its recorded session
still exists, and *lost* when it does not (it never started a turn, or was deleted). Sessions whose ids mark
them as this plan's but that no task holds are *orphans*. The three choices are the request's:
resume (each task in its own session; lost ones start afresh), start fresh, or clean up and run nothing.
What a resumed session is told depends on whether it ever received its task prompt: the executor checks
that at every resume (see `Executor._task_prompt_missing`), so this module only decides which tasks resume.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Literal

from planeteer_action.engine.agent import Agent, SessionInfo, SessionNotFound
from planeteer_action.engine.sessions import mark_deleted
from planeteer_action.plan.model import Plan, Recovery, RecoveryChoice, utc_now
from planeteer_action.plan.operations import close_attempt
from planeteer_action.plan.session_ids import belongs_to_plan

RECOVERY_CHOICES: tuple[RecoveryChoice, ...] = ("resume", "fresh", "cleanup")


@dataclass(frozen=True)
class UnfinishedTask:
    task_id: str
    status: str
    session_id: str | None
    state: Literal["resumable", "lost"]
    last_activity: str | None


@dataclass(frozen=True)
class RecoveryReport:
    unfinished: list[UnfinishedTask]
    orphans: list[SessionInfo]
    # Per resumable task: how its rules now differ from those its session started with (shown before resuming).
    rules_changed: dict[str, list[str]] = field(default_factory=dict)

    @property
    def needs_decision(self) -> bool:
        return bool(self.unfinished or self.orphans)


async def inspect(plan: Plan, agent: Agent, repository: str | None, branch: str | None) -> RecoveryReport:
    """One metadata lookup per unfinished task and one filtered listing for the orphans."""
    unfinished: list[UnfinishedTask] = []
    for task in plan.tasks:
        if task.status not in ("in_progress", "interrupted"):
            continue
        info = await agent.get_session(task.session_id) if task.session_id else None
        unfinished.append(
            UnfinishedTask(
                task_id=task.id,
                status=task.status,
                session_id=task.session_id,
                state="resumable" if info else "lost",
                last_activity=info.modified_time.isoformat() if info and info.modified_time else None,
            )
        )
    held = {task.session_id for task in plan.tasks if task.session_id}
    deleted = {a.session_id for task in plan.tasks for a in task.attempts if a.session_deleted}
    orphans = [
        session
        for session in await agent.list_sessions(repository, branch)
        if belongs_to_plan(session.session_id, plan.id)
        and session.session_id not in held
        and session.session_id not in deleted
    ]
    return RecoveryReport(unfinished=unfinished, orphans=orphans)


async def apply_choice(
    plan: Plan, report: RecoveryReport, choice: RecoveryChoice, agent: Agent, source: str | None = None
) -> Recovery:
    """Change the plan (and, for cleanup, the session store) as chosen, and record the decision in the plan."""
    record = Recovery(at=utc_now(), choice=choice, source=source)
    for found in report.unfinished:
        task = plan.task(found.task_id)
        if choice == "resume" and found.state == "resumable":
            task.status = "interrupted"
            close_attempt(task, "interrupted")
            record.resumed.append(task.id)
            if report.rules_changed.get(task.id):
                record.rules_changed[task.id] = report.rules_changed[task.id]
        else:
            close_attempt(task, "lost" if found.state == "lost" else "superseded")
            task.status = "pending"
            record.restarted.append(task.id)
    if choice == "cleanup":
        doomed = [s.session_id for s in report.orphans]
        doomed += [f.session_id for f in report.unfinished if f.state == "resumable" and f.session_id]
        for session_id in doomed:
            await delete_quietly(agent, session_id)
            record.deleted_sessions.append(session_id)
        gone = set(record.deleted_sessions)
        mark_deleted(plan, gone)
        for task in plan.tasks:
            if task.session_id in gone and task.status == "pending":
                task.session_id = None
    execution = plan.execution
    if execution is not None:
        execution.recoveries.append(record)
    return record


async def delete_quietly(agent: Agent, session_id: str) -> None:
    """Delete a session; one that is already gone counts as deleted."""
    with contextlib.suppress(SessionNotFound):
        await agent.delete_session(session_id)
