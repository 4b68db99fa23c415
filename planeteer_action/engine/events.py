"""What the executor reports as it works. Displays, logs and checkpoint sinks subscribe; none feed back."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from planeteer_action.plan.model import utc_now

RunStatus = Literal["complete", "failed", "interrupted"]


@dataclass(frozen=True)
class Event:
    at: str = field(default_factory=utc_now, kw_only=True)

    @property
    def kind(self) -> str:
        name = type(self).__name__
        return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class LockTakenOver(Event):
    """The plan's lock was left by a run that died without releasing it (a crash or a hard kill)."""

    pid: int
    host: str
    since: str


@dataclass(frozen=True)
class RunStarted(Event):
    plan_id: str
    plan_name: str
    total: int
    concurrency: int


@dataclass(frozen=True)
class TaskStarted(Event):
    task_id: str
    session_id: str
    attempt: int
    mode: Literal["create", "resume"]
    reason: str


@dataclass(frozen=True)
class TaskActivity(Event):
    task_id: str
    text: str


@dataclass(frozen=True)
class ToolDenied(Event):
    """The task's rules denied a tool request: it never ran, and its agent was told. `denied`: the task's count."""

    task_id: str
    description: str
    denied: int


@dataclass(frozen=True)
class TaskDone(Event):
    task_id: str
    session_id: str
    summary: str
    commit: str | None = None  # with worktree isolation: the integration commit holding its work
    changed: bool = True  # False: with worktree isolation, the task left nothing to commit


@dataclass(frozen=True)
class TaskFailed(Event):
    task_id: str
    session_id: str | None
    error: str


@dataclass(frozen=True)
class TaskInterrupted(Event):
    task_id: str
    session_id: str


@dataclass(frozen=True)
class SessionLost(Event):
    """A session that was to be resumed no longer exists; the task starts afresh instead."""

    task_id: str
    session_id: str


@dataclass(frozen=True)
class TaskBlocked(Event):
    task_id: str
    failed_dependencies: list[str]


@dataclass(frozen=True)
class RunFinished(Event):
    status: RunStatus
    counts: dict[str, int]


Listener = Callable[[Event], None]
