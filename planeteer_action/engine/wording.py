"""The words people read: one line per event, durations as they are shown and as they are written.

One place, so the terminal, the plain log and the job summary say the same thing the same way.
"""

from __future__ import annotations

import re

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
    ToolDenied,
)
from planeteer_action.errors import ConfigError

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


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
    if isinstance(event, ToolDenied):
        return f"task {event.task_id}: DENIED {event.description} (it did not run; {event.denied} denied so far)"
    if isinstance(event, TaskDone):
        merged = "" if event.commit is None else f" (merged as {event.commit[:10]})"
        return f"task {event.task_id} done{merged if event.changed else ' (no changes)'}: {first_line(event.summary)}"
    if isinstance(event, TaskFailed):
        return f"task {event.task_id} FAILED: {event.error}"
    if isinstance(event, TaskInterrupted):
        return f"task {event.task_id} interrupted; session {event.session_id} kept for resume"
    if isinstance(event, TaskBlocked):
        return f"task {event.task_id} blocked: depends on failed {', '.join(event.failed_dependencies)}"
    if isinstance(event, SessionLost):
        return f"task {event.task_id}: session {event.session_id} no longer exists; starting afresh"
    if isinstance(event, RunFinished):
        counts = ", ".join(f"{n} {k}" for k, n in event.counts.items() if n)
        return f"run {event.status}: {counts or 'no tasks'}"
    return ""


def first_line(text: str) -> str:
    """An agent's summary shortened to what fits on one line of a table or a log."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:160]


def format_duration(seconds: float | None) -> str:
    """`4.2s`, `42s`, `3m05s`; empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def parse_duration(text: str, what: str) -> float:
    """Seconds from a duration as people write it on a command line or in a workflow: `90`, `90s`, `10m`, `7d`."""
    match = _DURATION.match(str(text).lower())
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{what} {text!r} is not a duration: write seconds or e.g. 90s, 10m, 2h, 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]
