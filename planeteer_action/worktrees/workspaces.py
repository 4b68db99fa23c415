"""`PlanWorktrees` as the engine's `TaskWorkspaces`: git runs in worker threads, one shared-state change at a
time (worktree creation, resets, merges and hand-overs share one lock; a commit inside a task's own worktree
does not)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from planeteer_action.worktrees.git import GitFailed
from planeteer_action.worktrees.tasks import Integrated, PlanWorktrees


class WorktreeWorkspaces:
    def __init__(self, worktrees: PlanWorktrees) -> None:
        self.worktrees = worktrees
        self.integration_branch = worktrees.integration_branch
        self._lock = asyncio.Lock()

    async def prepare(self, task_id: str, reset_attempt: int | None) -> tuple[Path, str | None]:
        async with self._lock:
            return await asyncio.to_thread(self.worktrees.prepare, task_id, reset_attempt)

    async def commit(self, task_id: str, title: str, session_id: str) -> bool:
        return await asyncio.to_thread(self.worktrees.commit, task_id, title, session_id)

    async def integrate(self, task_id: str, title: str) -> Integrated:
        async with self._lock:
            return await asyncio.to_thread(self.worktrees.integrate, task_id, title)

    async def release(self, task_id: str) -> None:
        """The task is done and saved: its worktree goes to the next task. Failing here costs only disk (the
        folder stays until the run's end removes it), never the task or the run."""
        async with self._lock:
            with contextlib.suppress(GitFailed, OSError):
                await asyncio.to_thread(self.worktrees.release, task_id)
