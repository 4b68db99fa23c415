"""Finding, verifying and putting back a run's newest checkpoint: what a re-run and `planeteer pull` share.

The newest segment of the run holds the newest head; the head names the pieces to fetch (`fetch`), which are
put together (`archive.assemble`) and put back. "Re-run failed jobs" keeps earlier attempts' artifacts;
"Re-run all jobs" deletes them, which is why every segment also goes into the cache, keyed by run, and a
restore takes whichever copy is there. The cache is readable only inside a GitHub Actions job (there is no
REST download for cache entries), so `planeteer pull` finds the cache copies when it runs in a workflow step
of the same repository, and says so elsewhere. Old single-zip checkpoints (before pieces) are not read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planeteer_action.checkpoints.archive import Checkpoint, assemble
from planeteer_action.checkpoints.branch_restore import check_branches, put_back_branches
from planeteer_action.checkpoints.errors import CheckpointError
from planeteer_action.checkpoints.fetch import RunSegments, open_head, open_pieces
from planeteer_action.checkpoints.segments import Head
from planeteer_action.checkpoints.workspace import apply_changes, check_changes
from planeteer_action.github._twirp import ServiceError
from planeteer_action.github.cache import ActionsCache
from planeteer_action.github.run_artifacts import RunArtifacts
from planeteer_action.plan.store import write_atomic

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Restored:
    name: str
    origin: str  # "artifact" or "cache": where its head came from
    run_id: int
    attempt: int
    sequence: int
    sessions: list[str]
    changed_paths: list[str]
    base_commit: str | None = None
    branches: list[str] = field(default_factory=list)  # with worktree isolation: the branches put back
    head: Head | None = field(default=None, repr=False, compare=False)  # what the next uploads build on
    checkpoint: Checkpoint | None = field(default=None, repr=False, compare=False)
    # The head's pieces as fetched (sha256 -> bytes), and its segments that are artifacts: what the next
    # attempt's artifacts take over, and what they need not.
    pieces: Mapping[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    artifacts: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def describe(self) -> str:
        work = f"{len(self.branches)} branch(es)" if self.branches else f"{len(self.changed_paths)} changed file(s)"
        return (
            f"restored checkpoint {self.name} from the {self.origin} (run {self.run_id}, attempt {self.attempt}, "
            f"save {self.sequence}): {len(self.sessions)} session(s), {work}"
        )

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("head", "checkpoint", "pieces", "artifacts")}


@dataclass(frozen=True)
class RestoreTarget:
    """Where a restored checkpoint goes: the plan file, the checkout its changes apply to, the Copilot home."""

    plan_path: Path
    working_directory: Path
    copilot_home: Path
    key: str | None
    apply_work: bool = True


def restore_checkpoint(
    state_name: str,
    run_id: int,
    expected_plan_id: str | None,
    rest: RunArtifacts | None,
    cache: ActionsCache | None,
    target: RestoreTarget,
    warn: Warn,
    *,
    before_attempt: int | None = None,
) -> Restored | None:
    """Find the newest checkpoint of a plan in a run, verify every piece of it and put everything back.

    A checkpoint that cannot be found or trusted is a warning: the run falls back to the repository's plan.
    Work that cannot be put back (another commit, conflicting files) raises: skipping tasks whose work is
    missing would be worse than stopping. Either way nothing is changed unless everything can be put back.
    `before_attempt` skips the current attempt's own checkpoints.
    """
    readable_cache = cache if cache is not None and cache.can_read else None
    segments = RunSegments(state_name, run_id, rest, readable_cache, warn)
    try:
        return _restore_newest(segments, expected_plan_id, target, warn, before_attempt)
    finally:
        segments.close()


def _restore_newest(
    segments: RunSegments, expected_plan_id: str | None, target: RestoreTarget, warn: Warn, before_attempt: int | None
) -> Restored | None:
    """The newest head that passes every check, put back; None (warned) when there is none."""
    run_id = segments.run_id
    candidates = segments.heads(warn, before_attempt)
    segments.prefetch([name for _, origin, name in candidates if origin == "artifact"])
    if not candidates:
        unread = "" if segments.reads_cache else " (its cache copy is readable only from a GitHub Actions job)"
        warn(f"no checkpoint of this plan found in run {run_id}{unread}: starting from the plan file in the repository")
        return None
    for order, origin, name in candidates:
        try:
            head = open_head(segments.head_segment(name, origin), name, order, target.key, expected_plan_id, run_id)
            copies = segments.fetch_pieces(head)
            checkpoint = assemble(head.meta, open_pieces(head, copies, target.key, segments.place))
            branches = _check_branches(checkpoint, target)
        except (CheckpointError, ServiceError) as exc:
            warn(f"checkpoint {name} from the {origin} refused: {exc}")
            continue
        sessions, changed, refs = _put_back(checkpoint, name, target, warn, branches)
        base = checkpoint.meta.base_commit
        raw = {ref.sha256: copies[segments.place(ref)][ref.sha256] for ref in head.pieces}
        artifacts = tuple(segment for segment in head.segments() if segments.is_artifact(segment))
        return Restored(name, origin, run_id, *order, sessions, changed, base, refs, head, checkpoint, raw, artifacts)
    warn("no usable checkpoint: starting from the plan file in the repository")
    return None


def _check_branches(checkpoint: Checkpoint, target: RestoreTarget) -> dict[str, bytes] | None:
    """The task worktrees' changes to put back with the branches, once the bundles are known to be safe and to
    fit this checkout; None when there are no branches to put back (a bundle that must not be trusted raises
    CheckpointInvalid; one that cannot be put back here, WorkspaceChangesError)."""
    if checkpoint.branches is None or not target.apply_work or checkpoint.meta.base_commit is None:
        return None
    base = checkpoint.meta.base_commit
    return check_branches(target.working_directory, checkpoint.meta.plan_id, base, checkpoint.branches)


def _put_back(
    checkpoint: Checkpoint, name: str, target: RestoreTarget, warn: Warn, worktree_changes: dict[str, bytes] | None
) -> tuple[list[str], list[str], list[str]]:
    """Sessions, work and plan, all or nothing: (session ids, changed paths, branches created).

    Every check comes first (the patch applies, the bundle verified, the sessions are written in full into
    a staging folder); only then do the patch, the branches and worktrees, the renames of the session folders
    and the plan's atomic write change anything.
    """
    base = checkpoint.meta.base_commit
    apply_work = bool(checkpoint.changes) and target.apply_work
    if apply_work and base is None:
        warn(f"checkpoint {name} carries changes without a base commit: they were not applied")
        apply_work = False
    if apply_work and base is not None:
        check_changes(target.working_directory, base, checkpoint.changes)
    with checkpoint.stage_sessions(target.copilot_home) as staged:
        changed = apply_changes(target.working_directory, base, checkpoint.changes) if apply_work and base else []
        refs = []
        if worktree_changes is not None and checkpoint.branches is not None:
            plan_id = checkpoint.meta.plan_id
            refs = put_back_branches(target.working_directory, plan_id, checkpoint.branches, worktree_changes)
        sessions = staged.move_into_place()
    target.plan_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target.plan_path, checkpoint.plan_bytes)
    return sessions, changed, [ref.removeprefix("refs/heads/") for ref in refs]
