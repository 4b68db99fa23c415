"""The engine's view of where each task works, when tasks are isolated from one another.

With isolation, each task has its own workspace (a git worktree: `worktrees/` implements this on git),
made from the combined work of the finished tasks when it starts. A finished task's work is committed
there and integrated before the task counts as done, so its dependents start from it. The engine stays
free of git: it only calls these steps, in order, and records what they return.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

# The steps of finishing an isolated task, in order; a test hook may stop the process after each.
FinishStep = Literal["turn_ended", "committed", "merged", "saved"]
FINISH_STEPS: tuple[FinishStep, ...] = ("turn_ended", "committed", "merged", "saved")


class MergeResult(Protocol):
    @property
    def commit(self) -> str | None:
        """The integration commit holding the task's work (the tip, when it changed nothing); None on conflict."""

    @property
    def changed(self) -> bool: ...

    @property
    def conflicts(self) -> list[str]: ...


class TaskWorkspaces(Protocol):
    integration_branch: str

    async def prepare(self, task_id: str, reset_attempt: int | None) -> tuple[Path, str | None]:
        """The task's working directory, made or reused; with `reset_attempt`, emptied of what that attempt
        left (kept on the returned ref) and brought to the integrated work."""

    async def commit(self, task_id: str, title: str, session_id: str) -> bool:
        """Commit what the task left uncommitted; False when there was nothing."""

    async def integrate(self, task_id: str, title: str) -> MergeResult:
        """Merge the task's work into the integrated work, one merge at a time; safe to repeat."""

    async def release(self, task_id: str) -> None:
        """The task is done and saved: its workspace may go (or serve the next task); never raises."""
