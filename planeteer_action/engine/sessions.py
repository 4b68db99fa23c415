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

from planeteer_action.engine.agent import Agent, SessionInfo
from planeteer_action.errors import PlaneteerError
from planeteer_action.gitinfo import git_context
from planeteer_action.plan.model import Plan
from planeteer_action.plan.session_ids import belongs_to_plan, is_planeteer_session
from planeteer_action.plan.store import load_plan, save_plan

# Where the Planeteer TUI keeps a repository's plans.
PLAN_DIR = ".planeteer"

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


@dataclass(frozen=True)
class SessionScope:
    """Where to look for sessions (repository, branch) and which plans' records say whose they are.

    The branch narrows only the sessions planeteer cannot prove to be a consulted plan's: an isolated task's
    session is recorded under its own task branch, not the checkout's, and must still be seen.
    """

    plan_folder: Path
    plan_path: Path | None
    repository: str | None
    branch: str | None

    @classmethod
    def of(cls, workdir: Path, plan_path: Path | None, repository: str | None, branch: str | None) -> SessionScope:
        """Repository and branch default to the checkout's; a bad `plan_path` is refused here, before any work."""
        if plan_path is not None:
            load_plan(plan_path)
        context = git_context(workdir.resolve())
        return cls(workdir / PLAN_DIR, plan_path, repository or context.repository, branch or context.branch)

    def plan_paths(self) -> list[Path]:
        """The plans whose sessions are in question: the one asked about, else every plan in the folder."""
        return [self.plan_path] if self.plan_path is not None else list(discover_plans(self.plan_folder))

    def read_plans(self) -> tuple[dict[Path, Plan], Plan | None]:
        """Every plan consulted (the folder's, with the one asked about in place of its copy there) and that one."""
        plans = discover_plans(self.plan_folder)
        if self.plan_path is None:
            return plans, None
        chosen = load_plan(self.plan_path)
        plans = {path: plan for path, plan in plans.items() if plan.id != chosen.id}
        plans[self.plan_path] = chosen
        return plans, chosen


async def sessions_in_scope(agent: Agent, scope: SessionScope, plans: Iterable[Plan]) -> list[SessionInfo]:
    """The repository's sessions on the scope's branch, and those of `plans` on any branch of it.

    Ownership is proved by planeteer's id scheme, so a person's own session is listed only on the scope's
    branch, as before, and never becomes a cleanup candidate.
    """
    plan_ids = [plan.id for plan in plans]
    return [
        info
        for info in await agent.list_sessions(scope.repository, None)
        if scope.branch is None
        or info.branch == scope.branch
        or any(belongs_to_plan(info.session_id, plan_id) for plan_id in plan_ids)
    ]


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


def record_deletions(plans: dict[Path, Plan], session_ids: set[str]) -> None:
    """Note deletions in the attempt histories, so `status` shows them and recovery skips them.

    The caller holds these plans' locks and read them under those locks, so nothing newer is overwritten.
    """
    for path, plan in plans.items():
        if mark_deleted(plan, session_ids):
            plan.touch()
            save_plan(plan, path)


def _task_of(plan: Plan, session_id: str) -> str | None:
    for task in plan.tasks:
        if any(a.session_id == session_id for a in task.attempts):
            return task.id
    return None
