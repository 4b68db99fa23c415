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
    SessionLost,
    TaskActivity,
    TaskBlocked,
    TaskDone,
    TaskFailed,
    TaskInterrupted,
    TaskStarted,
    ToolDenied,
)
from planeteer_action.engine.wording import describe, first_line, format_duration
from planeteer_action.plan.model import Plan
from planeteer_action.plan.operations import tally

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
    denied: int = 0


@dataclass
class _Board:
    """Per-task state derived from events, shared by the live view and the final summary."""

    rows: dict[str, _Row] = field(default_factory=dict)

    @classmethod
    def from_plan(cls, plan: Plan) -> _Board:
        return cls(
            {
                t.id: _Row(t.title, t.status, t.session_id, attempts=len(t.attempts), denied=t.denied_requests)
                for t in plan.tasks
            }
        )

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
        elif isinstance(event, ToolDenied):
            row.denied = event.denied
            row.activity = f"denied: {event.description}"
        elif isinstance(event, TaskDone | TaskFailed | TaskInterrupted):
            row.status = {TaskDone: "done", TaskFailed: "failed", TaskInterrupted: "interrupted"}[type(event)]
            if row.started is not None:
                row.elapsed = time.monotonic() - row.started
            if isinstance(event, TaskDone):
                row.activity = first_line(event.summary)
            else:
                row.activity = event.error if isinstance(event, TaskFailed) else "session kept for resume"
        elif isinstance(event, TaskBlocked):
            row.status = "blocked"
            row.activity = f"waits on failed {', '.join(event.failed_dependencies)}"
        elif isinstance(event, SessionLost):
            row.activity = "session lost: starting afresh"

    def table(self, *, live: bool) -> Table:
        table = Table(expand=live, show_edge=False, pad_edge=False)
        # Tool requests the rules denied: a column only once there is one, so a run without rules looks as before.
        denials = any(row.denied for row in self.rows.values())
        columns = ("Task", "Status", "Time", "Session", *(["Denied"] if denials else []), "Now" if live else "Result")
        for column in columns:
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
                format_duration(elapsed),
                row.session_id or "",
                *([str(row.denied or "")] if denials else []),
                row.activity.replace("\n", " ")[:200],
            )
        return table

    def counts(self) -> str:
        counts = tally(row.status for row in self.rows.values())
        return ", ".join(f"{n} {status}" for status, n in counts.items() if n)


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
            self._console.print(describe(self._finished))


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
