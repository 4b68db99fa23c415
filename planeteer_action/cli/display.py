"""Showing a run: a rich live view on a terminal, timestamped lines elsewhere, JSON lines for scripts.

Each view is an event listener; it draws what happened and never touches the plan or the engine.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from planeteer_action.engine.events import (
    Event,
    LockTakenOver,
    RunFinished,
    RunStarted,
    SessionLost,
    TaskActivity,
    TaskBlocked,
    TaskDone,
    TaskFailed,
    TaskInterrupted,
    TaskStarted,
)
from planeteer_action.plan.model import Plan, parse_time

STATUS_STYLE = {
    "pending": "dim",
    "in_progress": "cyan",
    "done": "green",
    "failed": "red",
    "interrupted": "yellow",
    "blocked": "magenta",
}
_LIVE_ROW_LIMIT = 40


class RunView(Protocol):
    def __call__(self, event: Event) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Row:
    title: str
    status: str
    session_id: str | None = None
    started: float | None = None
    elapsed: float | None = None
    activity: str = ""
    attempts: int = 0


@dataclass
class _Board:
    """Per-task state derived from events, shared by the live view and the final summary."""

    rows: dict[str, _Row] = field(default_factory=dict)

    @classmethod
    def from_plan(cls, plan: Plan) -> _Board:
        return cls({t.id: _Row(t.title, t.status, t.session_id, attempts=len(t.attempts)) for t in plan.tasks})

    def apply(self, event: Event) -> None:
        task_id = getattr(event, "task_id", None)
        row = self.rows.get(task_id) if task_id else None
        if row is None:
            return
        if isinstance(event, TaskStarted):
            row.status, row.session_id, row.started = "in_progress", event.session_id, time.monotonic()
            row.attempts += 1
            row.activity = "resuming its session" if event.mode == "resume" else "starting"
        elif isinstance(event, TaskActivity):
            row.activity = event.text
        elif isinstance(event, TaskDone | TaskFailed | TaskInterrupted):
            row.status = {TaskDone: "done", TaskFailed: "failed", TaskInterrupted: "interrupted"}[type(event)]
            if row.started is not None:
                row.elapsed = time.monotonic() - row.started
            if isinstance(event, TaskDone):
                row.activity = _first_line(event.summary)
            else:
                row.activity = event.error if isinstance(event, TaskFailed) else "session kept for resume"
        elif isinstance(event, TaskBlocked):
            row.status = "blocked"
            row.activity = f"waits on failed {', '.join(event.failed_dependencies)}"
        elif isinstance(event, SessionLost):
            row.activity = "session lost: starting afresh"

    def table(self, *, live: bool) -> Table:
        table = Table(expand=live, show_edge=False, pad_edge=False)
        for column in ("Task", "Status", "Time", "Session", "Now" if live else "Result"):
            table.add_column(column, overflow="ellipsis", no_wrap=True, ratio=3 if column in "NowResult" else None)
        rows = list(self.rows.items())
        if live and len(rows) > _LIVE_ROW_LIMIT:
            rows = [r for r in rows if r[1].status == "in_progress"][:_LIVE_ROW_LIMIT]
        for task_id, row in rows:
            elapsed = row.elapsed
            if row.status == "in_progress" and row.started is not None:
                elapsed = time.monotonic() - row.started
            table.add_row(
                f"{task_id}",
                Text(row.status, style=STATUS_STYLE.get(row.status, "")),
                _duration(elapsed),
                row.session_id or "",
                row.activity.replace("\n", " ")[:200],
            )
        return table

    def counts(self) -> str:
        tally: dict[str, int] = {}
        for row in self.rows.values():
            tally[row.status] = tally.get(row.status, 0) + 1
        return ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))


class LiveView:
    """The terminal view: one row per task, refreshed while the run works, then a summary table."""

    def __init__(self, plan: Plan, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._board = _Board.from_plan(plan)
        self._title = plan.name
        self._finished: RunFinished | None = None
        # Started by the first event, so that a recovery question asked before the run is not drawn over.
        self._live: Live | None = None
        self._closing = False

    def __call__(self, event: Event) -> None:
        self._board.apply(event)
        if isinstance(event, RunFinished):
            self._finished = event
        elif isinstance(event, LockTakenOver):
            self._console.print(describe(event))  # a notice, above the table
        if self._live is None:
            # get_renderable: each refresh redraws, so running tasks' elapsed time ticks between events.
            self._live = Live(console=self._console, refresh_per_second=4, get_renderable=self._render)
            self._live.start()

    def _render(self) -> Group:
        """While running: the busy rows and what they do now; on closing: every row and its result."""
        header = Text(f"{self._title} — {self._board.counts()}", style="bold")
        return Group(header, self._board.table(live=not self._closing))

    def close(self) -> None:
        if self._live is None:
            return
        self._closing = True
        self._live.stop()
        if self._finished is not None:
            self._console.print(_closing_line(self._finished))


class LineLog:
    """Plain timestamped lines, for logs and anything that is not a terminal."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stderr

    def __call__(self, event: Event) -> None:
        line = describe(event)
        if line:
            self._stream.write(f"{event.at} {line}\n")
            self._stream.flush()

    def close(self) -> None:
        return None


class JsonLines:
    """One JSON object per event on stdout, for scripts (`--json`)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout

    def __call__(self, event: Event) -> None:
        self._stream.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
        self._stream.flush()

    def close(self) -> None:
        return None


def describe(event: Event) -> str:
    """One human line per event; the same words in the log, the terminal and the Actions log."""
    if isinstance(event, RunStarted):
        return f"run {event.plan_name!r}: {event.total} tasks, up to {event.concurrency} at once"
    if isinstance(event, LockTakenOver):
        return f"took over the plan's lock from pid {event.pid} on {event.host} (since {event.since}), which is gone"
    if isinstance(event, TaskStarted):
        verb = "resumed" if event.mode == "resume" else "started"
        return f"task {event.task_id} {verb} in session {event.session_id} ({event.reason})"
    if isinstance(event, TaskActivity):
        return f"task {event.task_id}: {event.text}"
    if isinstance(event, TaskDone):
        return f"task {event.task_id} done: {_first_line(event.summary)}"
    if isinstance(event, TaskFailed):
        return f"task {event.task_id} FAILED: {event.error}"
    if isinstance(event, TaskInterrupted):
        return f"task {event.task_id} interrupted; session {event.session_id} kept for resume"
    if isinstance(event, TaskBlocked):
        return f"task {event.task_id} blocked: depends on failed {', '.join(event.failed_dependencies)}"
    if isinstance(event, SessionLost):
        return f"task {event.task_id}: session {event.session_id} no longer exists; starting afresh"
    if isinstance(event, RunFinished):
        return _closing_line(event)
    return ""


def _closing_line(event: RunFinished) -> str:
    counts = ", ".join(f"{n} {k}" for k, n in event.counts.items() if n)
    return f"run {event.status}: {counts or 'no tasks'}"


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:160]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def task_duration(started_at: str | None, ended_at: str | None) -> float | None:
    start, end = parse_time(started_at), parse_time(ended_at)
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def format_duration(seconds: float | None) -> str:
    return _duration(seconds)
