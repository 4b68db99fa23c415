"""Deleting planeteer's orphaned sessions, safely against a run of the same plan.

Cleanup holds the lock of every plan whose sessions it may delete, from before it reads those plans until
it has recorded the deletions. So no run changes a plan while cleanup decides from it (a session created
by a running task is never taken for an orphan), and cleanup never saves a snapshot older than the file.
While a run owns one of those plans, cleanup is refused with the owner's pid, before anything is deleted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from planeteer_action.engine.agent import Agent
from planeteer_action.engine.recovery import delete_quietly
from planeteer_action.engine.sessions import (
    SessionScope,
    classify,
    cleanup_candidates,
    record_deletions,
    sessions_in_scope,
)
from planeteer_action.plan.lock import PlanLock

# Asked with the sessions about to be deleted; False deletes nothing.
Confirm = Callable[[list[str]], bool]


async def cleanup_orphans(
    agent: Agent, scope: SessionScope, older_than: float | None, dry_run: bool, confirm: Confirm
) -> list[str]:
    """The orphans deleted (or, with `dry_run`, those that would be); none when `confirm` declines."""
    locked = scope.plan_paths()
    with _holding(locked):
        plans, _ = scope.read_plans()  # read again under the locks: a run may have saved since
        mine = {plans[path].id for path in locked if path in plans}
        found = classify(await sessions_in_scope(agent, scope, plans.values()), list(plans.values()))
        doomed = [s.info.session_id for s in cleanup_candidates(found, older_than) if s.plan_id in mine]
        if dry_run:
            return doomed
        if not doomed or not confirm(doomed):
            return []
        for session_id in doomed:
            await delete_quietly(agent, session_id)
        record_deletions({path: plan for path, plan in plans.items() if path in locked}, set(doomed))
        return doomed


@contextlib.contextmanager
def _holding(paths: list[Path]) -> Iterator[None]:
    """Every plan's lock, or none: PlanLocked names the run that holds one."""
    with contextlib.ExitStack() as stack:
        for path in paths:
            stack.enter_context(PlanLock(path).held())
        yield
