"""The names every part of issue 9 shares: branches, refs, worktree folders and commit trailers.

One module owns them so that the engine, delivery and checkpoints agree on where a plan's work lives.
Task branches sit under `planeteer-task/`, not `planeteer/<plan id>/`: a ref cannot be both a branch and
a folder, and `planeteer/<plan id>` is the integration branch.
"""

from __future__ import annotations

import re
from pathlib import Path

from planeteer_action.plan.session_ids import plan_fingerprint, task_slug

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
TRAILER_PLAN = "Planeteer-Plan"
TRAILER_TASK = "Planeteer-Task"
TRAILER_SESSION = "Planeteer-Session"


def safe_ref_component(text: str) -> str:
    """`text` as one valid ref component (the rules of `git check-ref-format`); empty becomes `plan`."""
    safe = _UNSAFE.sub("-", text)
    while ".." in safe:
        safe = safe.replace("..", ".")
    safe = safe.lstrip(".-")
    while safe.endswith(".lock") or safe.endswith("."):
        safe = safe.removesuffix(".lock").rstrip(".")
    return safe or "plan"


def integration_branch(plan_id: str) -> str:
    return f"planeteer/{safe_ref_component(plan_id)}"


def task_branches_prefix(plan_id: str) -> str:
    return f"refs/heads/planeteer-task/{plan_fingerprint(plan_id)}/"


def task_branch(plan_id: str, task_id: str) -> str:
    return f"planeteer-task/{plan_fingerprint(plan_id)}/{task_slug(task_id)}"


def abandoned_ref(plan_id: str, task_id: str, attempt: int) -> str:
    return f"refs/planeteer/{plan_fingerprint(plan_id)}/abandoned/{task_slug(task_id)}-a{attempt}"


def abandoned_refs_prefix(plan_id: str) -> str:
    return f"refs/planeteer/{plan_fingerprint(plan_id)}/abandoned/"


def worktrees_root(common_dir: Path, plan_id: str) -> Path:
    """Inside the repository's common git dir: shares its objects, leaves no untracked files in the checkout."""
    return common_dir / "planeteer" / "worktrees" / plan_fingerprint(plan_id)


def worktree_path(common_dir: Path, plan_id: str, task_id: str) -> Path:
    return worktrees_root(common_dir, plan_id) / task_slug(task_id)


def ready_marker(worktree: Path) -> Path:
    """Beside a task's worktree once its checkout is complete, before any agent works there: a worktree
    without it is one a kill interrupted mid-checkout, whose missing files a commit would record as deletions."""
    return worktree.with_name(worktree.name + ".ready")


def spare_worktrees(common_dir: Path, plan_id: str) -> Path:
    """Where done tasks' worktrees wait to be handed to the next task; no task's slug has a dot in it."""
    return worktrees_root(common_dir, plan_id) / ".spare"


def commit_trailers(plan_id: str, task_id: str, session_id: str) -> list[tuple[str, str]]:
    return [(TRAILER_PLAN, plan_id), (TRAILER_TASK, task_id), (TRAILER_SESSION, session_id)]
