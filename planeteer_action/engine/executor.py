"""The scheduler: runs every runnable task in its own agent session, as many at once as allowed.

It knows nothing of files or terminals: it changes the plan and awaits a save after every change (before
acting on the next one), and reports events. A task starts the moment its dependencies are done.
Cancelling (`interrupt`) aborts the running turns and leaves those tasks `interrupted` with their session
ids, which is what a later run resumes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from planeteer_action.engine.agent import (
    Agent,
    AgentError,
    SessionAlreadyExists,
    SessionNotFound,
    TurnMode,
    TurnRequest,
    TurnResult,
)
from planeteer_action.engine.events import (
    Event,
    Listener,
    RunFinished,
    RunStarted,
    RunStatus,
    SessionLost,
    TaskActivity,
    TaskBlocked,
    TaskDone,
    TaskFailed,
    TaskInterrupted,
    TaskStarted,
    ToolDenied,
)
from planeteer_action.engine.prompts import conflict_prompt, continuation_prompt, holds_task_prompt, task_prompt
from planeteer_action.engine.rules import SessionRules
from planeteer_action.engine.workspaces import FinishStep, MergeResult, TaskWorkspaces
from planeteer_action.plan.graph import blocked_tasks, chain_lengths, ready_tasks
from planeteer_action.plan.model import Attempt, AttemptOutcome, Plan, RulesRecord, Task, utc_now
from planeteer_action.plan.operations import count_statuses
from planeteer_action.plan.session_ids import session_id_for

# A fresh attempt whose id is somehow taken (a hand-edited plan) moves on to the next number this often.
_MAX_ID_COLLISIONS = 5
_RESEND_REASON = "resumed after interruption, with the full task prompt (it had not been delivered)"
CONFLICT_REASON = "merge conflict: one more turn in its own session to resolve it"


class PlanSaver(Protocol):
    """Where the executor saves the plan; `changed` names the tasks that changed since the last save."""

    async def save(self, plan: Plan, changed: Collection[str] | None) -> None: ...

    def save_blocking(self, plan: Plan, changed: Collection[str] | None) -> None: ...


class TaskRules(Protocol):
    """Each task's rules (`rules.resolve.PlanRules`), and what the plan records of them: names and hashes."""

    def session_rules(self, task: Task) -> SessionRules: ...

    def record(self, task: Task) -> RulesRecord | None: ...


@dataclass(frozen=True)
class ExecutorOptions:
    working_directory: Path
    concurrency: int = 4
    quiet_timeout: float = 600.0
    # None: every task works in `working_directory` (shared). Otherwise each task in its own workspace.
    workspaces: TaskWorkspaces | None = None
    # Called after each step of finishing an isolated task: lets a test stop the process exactly there.
    on_finish_step: Callable[[str, FinishStep], None] | None = None
    # None: every session gets today's defaults (everything approved, nothing added) and nothing is recorded.
    rules: TaskRules | None = None


@dataclass(frozen=True)
class RunResult:
    status: RunStatus
    counts: dict[str, int]


class Executor:
    def __init__(
        self,
        plan: Plan,
        agent: Agent,
        options: ExecutorOptions,
        saver: PlanSaver,
        listeners: list[Listener] | None = None,
    ) -> None:
        self.plan = plan
        self._agent = agent
        self._options = options
        self._saver = saver
        self._listeners = list(listeners or [])
        self._running: dict[asyncio.Task[None], Task] = {}
        self._stopping = False
        self._priority = chain_lengths(plan)

    def emit(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)

    async def run(self) -> RunResult:
        self.emit(
            RunStarted(
                plan_id=self.plan.id,
                plan_name=self.plan.name,
                total=len(self.plan.tasks),
                concurrency=self._options.concurrency,
            )
        )
        reported_blocked: set[str] = set()
        failure: BaseException | None = None
        while True:
            if not self._stopping:
                self._start_ready_tasks()
            for task_id in sorted(blocked_tasks(self.plan) - reported_blocked):
                reported_blocked.add(task_id)
                failed = [d for d in self.plan.task(task_id).depends_on if d not in self._done_ids()]
                self.emit(TaskBlocked(task_id=task_id, failed_dependencies=failed))
            if not self._running:
                break
            finished, _ = await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
            for handle in finished:
                del self._running[handle]
                if not handle.cancelled() and handle.exception() is not None and failure is None:
                    # The plan could not be saved: carrying on would break the promise of recovery.
                    failure = handle.exception()
                    self.interrupt()
        if failure is not None:
            raise failure
        counts = count_statuses(self.plan)
        status: RunStatus
        if self._stopping:
            status = "interrupted"
        elif counts["done"] == len(self.plan.tasks):
            status = "complete"
        else:
            status = "failed"
        self.emit(RunFinished(status=status, counts=counts))
        return RunResult(status=status, counts=counts)

    def interrupt(self) -> None:
        """Stop starting tasks and abort the running ones; `run` returns once they are saved."""
        self._stopping = True
        for handle in self._running:
            handle.cancel()

    def mark_running_interrupted(self) -> None:
        """For a forced exit that cannot wait for the turns to abort: record the state and save it now."""
        for task in self._running.values():
            self._end_attempt(task, "interrupted", None)
            task.status = "interrupted"
        self.plan.touch()
        self._saver.save_blocking(self.plan, {task.id for task in self._running.values()})

    def _done_ids(self) -> set[str]:
        return {task.id for task in self.plan.tasks if task.status == "done"}

    def _start_ready_tasks(self) -> None:
        busy = {task.id for task in self._running.values()}
        # sorted() is stable: among equally long chains, plan order decides.
        for task in sorted(ready_tasks(self.plan), key=lambda t: -self._priority[t.id]):
            if len(self._running) >= self._options.concurrency:
                return
            if task.id in busy:
                continue
            handle = asyncio.create_task(self._run_task(task), name=f"task {task.id}")
            self._running[handle] = task

    async def _run_task(self, task: Task) -> None:
        resume = task.status == "interrupted" and task.session_id is not None
        collisions = 0
        try:
            while True:
                resend = resume and await self._task_prompt_missing(task)
                workdir = await self._workspace(task, resume)
                attempt = await self._begin_attempt(task, resume, resend)
                prompt = continuation_prompt(task) if resume and not resend else task_prompt(self.plan, task)
                try:
                    result = await self._turn(task, attempt, prompt, "resume" if resume else "create", workdir)
                except SessionNotFound as exc:
                    self._end_attempt(task, "lost", str(exc))
                    await self._save(task)
                    self.emit(SessionLost(task_id=task.id, session_id=attempt.session_id))
                    resume = False
                    continue
                except SessionAlreadyExists as exc:
                    collisions += 1
                    if collisions <= _MAX_ID_COLLISIONS:
                        self._end_attempt(task, "lost", str(exc))
                        await self._save(task)
                        continue
                    await self._fail(task, str(exc))
                    return
                except AgentError as exc:
                    await self._fail(task, str(exc))
                    return
                await self._complete(task, attempt, result.summary, workdir)
                return
        except asyncio.CancelledError:
            if task.status == "in_progress":
                self._end_attempt(task, "interrupted", None)
                task.status = "interrupted"
                await self._save(task)
                self.emit(TaskInterrupted(task_id=task.id, session_id=task.session_id or ""))
            raise

    async def _turn(self, task: Task, attempt: Attempt, prompt: str, mode: TurnMode, workdir: Path) -> TurnResult:
        request = TurnRequest(
            session_id=attempt.session_id,
            session_name=f"planeteer {self.plan.name}: {task.id}",
            prompt=prompt,
            mode=mode,
            working_directory=workdir,
            quiet_timeout=self._options.quiet_timeout,
            on_activity=functools.partial(self._report_activity, task.id),
            rules=self._options.rules.session_rules(task) if self._options.rules else SessionRules(),
            on_denied=functools.partial(self._report_denied, task),
        )
        return await self._agent.run_turn(request)

    async def _workspace(self, task: Task, resume: bool) -> Path:
        """Where the task works. Isolated, a fresh attempt after an earlier one starts from the integrated work:
        what the earlier attempt left is kept only on the ref recorded in that attempt."""
        workspaces = self._options.workspaces
        if workspaces is None:
            return self._options.working_directory
        previous = task.current_attempt
        reset = previous.number if previous is not None and not resume else None
        workdir, abandoned = await workspaces.prepare(task.id, reset)
        if previous is not None and abandoned is not None:
            previous.abandoned_ref = abandoned
        return workdir

    async def _complete(self, task: Task, attempt: Attempt, summary: str, workdir: Path) -> None:
        """The turn succeeded. Isolated, the task is done only once its work is committed, merged and saved
        (in that order, each step safe to repeat after a crash): its dependents start from that merge."""
        workspaces = self._options.workspaces
        if workspaces is not None:
            try:
                merged = await self._integrate(task, workspaces, workdir)
            except AgentError as exc:
                await self._fail(task, f"the turn to resolve its merge conflict failed: {exc}")
                return
            if merged.commit is None:
                await self._fail(
                    task, f"its changes conflict with the integrated work in: {', '.join(merged.conflicts)}"
                )
                return
            task.commit = merged.commit
            attempt = task.current_attempt or attempt
            attempt.no_changes = not merged.changed
        self._end_attempt(task, "done", None)
        task.status = "done"
        task.agent_result = summary
        await self._save(task)
        self._finish_step(task, "saved")
        if workspaces is not None:
            await workspaces.release(task.id)
        self.emit(
            TaskDone(
                task_id=task.id,
                session_id=attempt.session_id,
                summary=summary,
                commit=task.commit,
                changed=not attempt.no_changes,
            )
        )

    async def _integrate(self, task: Task, workspaces: TaskWorkspaces, workdir: Path) -> MergeResult:
        """Commit and merge; on a conflict, the task's own session gets one turn to merge and resolve it."""
        session_id = task.session_id or ""
        while True:
            self._finish_step(task, "turn_ended")
            await workspaces.commit(task.id, task.title, session_id)
            self._finish_step(task, "committed")
            merged = await workspaces.integrate(task.id, task.title)
            resolving = any(a.reason == CONFLICT_REASON and a.session_id == session_id for a in task.attempts)
            if not merged.conflicts or resolving:
                if merged.commit is not None:
                    self._finish_step(task, "merged")
                return merged
            self._end_attempt(task, "done", None)
            attempt = Attempt(
                number=task.next_attempt_number(), session_id=session_id, reason=CONFLICT_REASON, started_at=utc_now()
            )
            self._record_rules(task, attempt)
            task.attempts.append(attempt)
            await self._save(task)
            self.emit(
                TaskStarted(
                    task_id=task.id,
                    session_id=session_id,
                    attempt=attempt.number,
                    mode="resume",
                    reason=CONFLICT_REASON,
                )
            )
            prompt = conflict_prompt(task, workspaces.integration_branch, merged.conflicts)
            await self._turn(task, attempt, prompt, "resume", workdir)

    def _finish_step(self, task: Task, step: FinishStep) -> None:
        if self._options.on_finish_step is not None:
            self._options.on_finish_step(task.id, step)

    def _report_activity(self, task_id: str, text: str) -> None:
        self.emit(TaskActivity(task_id=task_id, text=text))

    def _report_denied(self, task: Task, description: str) -> None:
        """Counted in the plan (saved with the task's next change, at the latest when its turn ends)."""
        task.denied_requests += 1
        self.emit(ToolDenied(task_id=task.id, description=description, denied=task.denied_requests))

    def _record_rules(self, task: Task, attempt: Attempt) -> None:
        """The rules the attempt's session runs under, by name and hash; a plan without rules stays as it was."""
        record = self._options.rules.record(task) if self._options.rules else None
        if record is not None:
            attempt.rules = record

    async def _task_prompt_missing(self, task: Task) -> bool:
        """Whether the task's stored session never received its task prompt (interrupted in the instant between
        its creation and the first prompt): a continuation alone would leave its agent nothing to do.

        When unsure, yes: the full prompt twice is harmless. A session that is not stored at all is left to the
        resume, which then starts a fresh attempt.
        """
        try:
            messages = await self._agent.user_messages(task.session_id or "")
        except AgentError:
            return True
        return messages is not None and not holds_task_prompt(messages, task)

    async def _begin_attempt(self, task: Task, resume: bool, resend: bool) -> Attempt:
        """Write-ahead: the session id is in the saved plan before the session can exist."""
        previous = task.current_attempt
        if resume and previous is not None and task.session_id is not None:
            number, session_id = previous.number, task.session_id
            reason = _RESEND_REASON if resend else "resumed after interruption"
        else:
            number = task.next_attempt_number()
            session_id = session_id_for(self.plan.id, task.id, number)
            reason = _fresh_reason(previous)
        attempt = Attempt(number=number, session_id=session_id, reason=reason, started_at=utc_now())
        self._record_rules(task, attempt)
        task.attempts.append(attempt)
        task.session_id = session_id
        task.status = "in_progress"
        await self._save(task)
        self.emit(
            TaskStarted(
                task_id=task.id,
                session_id=session_id,
                attempt=number,
                mode="resume" if resume else "create",
                reason=reason,
            )
        )
        return attempt

    def _end_attempt(self, task: Task, outcome: AttemptOutcome, error: str | None) -> None:
        attempt = task.current_attempt
        if attempt is None or attempt.outcome != "running":
            return
        attempt.outcome = outcome
        attempt.ended_at = utc_now()
        if error:
            attempt.error = error

    async def _fail(self, task: Task, error: str) -> None:
        self._end_attempt(task, "failed", error)
        task.status = "failed"
        task.agent_result = error
        await self._save(task)
        self.emit(TaskFailed(task_id=task.id, session_id=task.session_id, error=error))

    async def _save(self, task: Task) -> None:
        self.plan.touch()
        await self._saver.save(self.plan, {task.id})


def _fresh_reason(previous: Attempt | None) -> str:
    if previous is None:
        return "first start"
    return {
        "failed": "retry after failure",
        "lost": "fresh start: previous session lost",
        "superseded": "fresh start (chosen)",
    }.get(previous.outcome, "fresh start")
