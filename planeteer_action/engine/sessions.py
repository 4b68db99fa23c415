"""Which stored Copilot sessions are planeteer's, whose, and which may be deleted.

Only a session whose id follows planeteer's scheme *and* belongs to a plan we can read *and* is held by
none of that plan's tasks is ever a cleanup candidate. A person's own sessions (any other id) never are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from planeteer_action.engine.agent import SessionInfo
from planeteer_action.engine.session_ids import belongs_to_plan, is_planeteer_session
from planeteer_action.errors import PlaneteerError
from planeteer_action.plan.model import Plan
from planeteer_action.plan.store import load_plan

SessionKind = Literal["live", "orphan", "unknown-plan", "not-planeteer"]
KIND_LABELS = {
    "live": "held by a task",
    "orphan": "orphan of this plan",
    "unknown-plan": "another plan's",
    "not-planeteer": "not planeteer's",
}


@dataclass(frozen=True)
class ClassifiedSession:
    info: SessionInfo
    kind: SessionKind
    plan_id: str | None = None
    task_id: str | None = None
    task_status: str | None = None

    def age_seconds(self, now: datetime | None = None) -> float | None:
        stamp = self.info.modified_time or self.info.start_time
        if stamp is None:
            return None
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
        return ((now or datetime.now(UTC)) - stamp).total_seconds()


def discover_plans(folder: Path) -> dict[Path, Plan]:
    """Plans in a `.planeteer/` folder (the TUI's own place), skipping files that are not plans."""
    plans: dict[Path, Plan] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            plans[path] = load_plan(path)
        except PlaneteerError:
            continue
    return plans


def classify(sessions: Iterable[SessionInfo], plans: list[Plan]) -> list[ClassifiedSession]:
    holders = {task.session_id: (plan, task) for plan in plans for task in plan.tasks if task.session_id is not None}
    result = []
    for info in sessions:
        held = holders.get(info.session_id)
        if held is not None:
            plan, task = held
            result.append(ClassifiedSession(info, "live", plan.id, task.id, task.status))
            continue
        owner = next((p for p in plans if belongs_to_plan(info.session_id, p.id)), None)
        if owner is not None:
            result.append(ClassifiedSession(info, "orphan", owner.id, _task_of(owner, info.session_id)))
        elif is_planeteer_session(info.session_id):
            result.append(ClassifiedSession(info, "unknown-plan"))
        else:
            result.append(ClassifiedSession(info, "not-planeteer"))
    return result


def cleanup_candidates(
    classified: Iterable[ClassifiedSession], older_than: float | None = None
) -> list[ClassifiedSession]:
    """Orphans of readable plans only, optionally only those idle for longer than `older_than` seconds."""
    chosen = []
    for session in classified:
        if session.kind != "orphan" or not is_planeteer_session(session.info.session_id):
            continue
        age = session.age_seconds()
        if older_than is not None and (age is None or age < older_than):
            continue
        chosen.append(session)
    return chosen


def mark_deleted(plan: Plan, session_ids: set[str]) -> bool:
    """Note in the attempt history that these sessions are gone; True if the plan changed."""
    changed = False
    for task in plan.tasks:
        for attempt in task.attempts:
            if attempt.session_id in session_ids and not attempt.session_deleted:
                attempt.session_deleted = True
                changed = True
    return changed


def _task_of(plan: Plan, session_id: str) -> str | None:
    for task in plan.tasks:
        if any(a.session_id == session_id for a in task.attempts):
            return task.id
    return None
