"""Packing a checkpoint as pieces: only what changed since the last upload is read and packed.

The ledger, kept in the state folder between uploads (and between the action's two steps), remembers what
has travelled in this run: the pieces the newest head names, how much of each session file went out, which
sessions are final (a done task's session, once a checkpoint found it unchanged, is not looked at again),
and the commits the git bundles carry. Each checkpoint then packs a small state piece (the plan and the
refs), one bundle of the commits made since (the running tasks' worktree snapshots among them), and one
piece per session that changed (a log's appended range, other files whole). A checkpoint after a task
change so costs what changed, never the size of the whole state. A restore of this run seeds the ledger
from the head it put back, so the next attempt's heads name the earlier attempt's pieces instead of
sending them again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planeteer_action.checkpoints.archive import Checkpoint
from planeteer_action.checkpoints.branches import GIT_BUNDLE, BranchState, capture_branches
from planeteer_action.checkpoints.manifest import PATCH, PLAN, SESSIONS, CheckpointMeta
from planeteer_action.checkpoints.pieces import build_piece, piece_id
from planeteer_action.checkpoints.segments import Head, PieceRef
from planeteer_action.checkpoints.session_files import SentFile, changed_session_files
from planeteer_action.checkpoints.workspace import capture_changes
from planeteer_action.checkpoints.zip_io import DEFAULT_LIMITS
from planeteer_action.plan.model import Plan, utc_now
from planeteer_action.plan.session_ids import belongs_to_plan
from planeteer_action.plan.store import write_atomic


@dataclass
class Ledger:
    """What has travelled in this run, as of the newest head that went out."""

    run_id: str = ""
    head: list[PieceRef] = field(default_factory=list)  # the pieces the newest head names
    files: dict[str, SentFile] = field(default_factory=dict)  # "<session id>/<relative path>" -> what went out
    final: set[str] = field(default_factory=set)  # sessions that are finished and went out whole
    tips: list[str] = field(default_factory=list)  # the commits the bundles so far carry (with their history)
    artifacts: list[str] = field(default_factory=list)  # this run's segments that went out as artifacts, alive
    artifact_head: list[str] = field(default_factory=list)  # the segments the newest artifact's head names

    @classmethod
    def load(cls, path: Path, run_id: str) -> Ledger:
        """The ledger of run `run_id` in `path`; an empty one when there is none (or one of another run)."""
        try:
            raw: Any = json.loads(path.read_text())
            ledger = cls(
                run_id=raw["run_id"],
                head=[PieceRef(**ref) for ref in raw["head"]],
                files={name: SentFile(s, m, bytes.fromhex(t)) for name, (s, m, t) in raw["files"].items()},
                final=set(raw["final"]),
                tips=list(raw["tips"]),
                artifacts=list(raw["artifacts"]),
                artifact_head=list(raw["artifact_head"]),
            )
        except (OSError, ValueError, TypeError, KeyError):
            return cls(run_id=run_id)
        return ledger if ledger.run_id == run_id else cls(run_id=run_id)

    def save(self, path: Path) -> None:
        raw = {
            "run_id": self.run_id,
            "head": [dataclasses.asdict(ref) for ref in self.head],
            "files": {name: [f.size, f.mtime_ns, f.tail.hex()] for name, f in self.files.items()},
            "final": sorted(self.final),
            "tips": self.tips,
            "artifacts": self.artifacts,
            "artifact_head": self.artifact_head,
        }
        write_atomic(path, json.dumps(raw).encode())

    @classmethod
    def after_restore(cls, head: Head, checkpoint: Checkpoint, copilot_home: Path, artifacts: Sequence[str]) -> Ledger:
        """The ledger of a run whose `head` was just put back here: its pieces travelled already, and its
        segments `artifacts` are artifacts."""
        files: dict[str, SentFile] = {}
        for session_id in checkpoint.session_ids:
            folder = copilot_home / "session-state" / session_id
            for relative, _, _, sent in changed_session_files(folder, {}, DEFAULT_LIMITS.max_member_bytes):
                files[f"{session_id}/{relative}"] = sent
        tips = checkpoint.branches.commits() if checkpoint.branches else []
        # Finished sessions become final once a checkpoint finds them unchanged here: one look at their files.
        return cls(head.meta.run_id, list(head.pieces), files, set(), tips, list(artifacts))


@dataclass(frozen=True)
class PackSource:
    """Where a checkpoint is packed from, and the names it carries."""

    plan_path: Path
    working_directory: Path
    copilot_home: Path
    base_commit: str | None
    key: str | None
    exclude: Sequence[Path]  # what the workspace patch of a shared checkout leaves out
    plan_path_shown: str  # the plan's path in the checkout, recorded in the meta


@dataclass(frozen=True)
class Packed:
    """A new head, the pieces no upload carried yet (sha256 -> bytes), and the ledger once they are out."""

    head: Head
    pieces: dict[str, bytes]
    ledger: Ledger
    plan_bytes: bytes


def pack(source: PackSource, ledger: Ledger, attempt: int, sequence: int, segment: str) -> Packed:
    """Pack what changed since `ledger` into pieces held by `segment`, and the head of the whole checkpoint."""
    plan_bytes = source.plan_path.read_bytes()
    plan = Plan.model_validate(json.loads(plan_bytes))
    meta = CheckpointMeta(
        plan.id, ledger.run_id, attempt, sequence, source.base_commit, utc_now(), source.plan_path_shown
    )
    after = dataclasses.replace(
        ledger,
        files=dict(ledger.files),
        final=set(ledger.final),
        tips=list(ledger.tips),
        artifacts=list(ledger.artifacts),
        artifact_head=list(ledger.artifact_head),
    )
    new: dict[str, bytes] = {}

    def add(
        members: dict[str, bytes], kind: str, session: str | None = None, offsets: dict[str, int] | None = None
    ) -> PieceRef:
        data = build_piece(meta, members, source.key, offsets=offsets)
        new[piece_id(data)] = data
        return PieceRef(piece_id(data), len(data), segment, kind, session)

    state, branches = _state_members(source, plan, plan_bytes, ledger.tips)
    live = live_sessions(plan)
    refs = [ref for ref in ledger.head if ref.kind == "bundle" or (ref.kind == "session" and ref.session in live)]
    if branches is not None:
        refs += [add({GIT_BUNDLE: bundle}, "bundle") for bundle in branches.bundles]
        after.tips = branches.commits()
    finished = finished_sessions(plan)
    for session_id in sorted(live - ledger.final):
        members, offsets = _session_changes(source.copilot_home, session_id, after.files)
        if members:
            refs.append(add(members, "session", session_id, offsets))
        elif session_id in finished:  # finished, and found as it was: it is not looked at again
            after.final.add(session_id)
    refs.append(add(state, "state"))
    after.final &= live
    # Final sessions are not looked at again, so what went out of their files need not be remembered.
    looked_at = live - after.final
    after.files = {name: sent for name, sent in after.files.items() if name.split("/", 1)[0] in looked_at}
    return Packed(Head(meta, tuple(refs)), new, after, plan_bytes)


def live_sessions(plan: Plan) -> set[str]:
    """The plan's sessions a restore needs: every attempt's that was not deleted."""
    return {
        attempt.session_id
        for task in plan.tasks
        for attempt in task.attempts
        if attempt.session_id and not attempt.session_deleted and belongs_to_plan(attempt.session_id, plan.id)
    }


def finished_sessions(plan: Plan) -> set[str]:
    """Sessions no agent writes to again: a done task's, and every attempt's but a task's last."""
    finished = set()
    for task in plan.tasks:
        for attempt in task.attempts:
            if attempt.session_id and (task.status == "done" or attempt is not task.attempts[-1]):
                finished.add(attempt.session_id)
    return finished


def _state_members(
    source: PackSource, plan: Plan, plan_bytes: bytes, carried: list[str]
) -> tuple[dict[str, bytes], BranchState | None]:
    """The state piece's members (plan, refs and worktree changes, or the shared checkout's patch), and the
    branches with the bundle of the commits made since `carried`."""
    if source.base_commit and plan.execution is not None and plan.execution.isolation == "worktree":
        # The work is commits on the plan's branches; the checkout itself holds none of it.
        branches = capture_branches(source.working_directory, plan, source.base_commit, carried=carried)
        return {PLAN: plan_bytes, **branches.members()}, branches
    if source.base_commit:
        changes = capture_changes(source.working_directory, source.base_commit, source.exclude)
        return {PLAN: plan_bytes, **({PATCH: changes} if changes else {})}, None
    return {PLAN: plan_bytes}, None


def _session_changes(
    copilot_home: Path, session_id: str, sent: dict[str, SentFile]
) -> tuple[dict[str, bytes], dict[str, int]]:
    """The members and offsets of what changed in one session folder; `sent` is brought up to date."""
    folder = copilot_home / "session-state" / session_id
    prefix = f"{session_id}/"
    before = {name.removeprefix(prefix): f for name, f in sent.items() if name.startswith(prefix)}
    members: dict[str, bytes] = {}
    offsets: dict[str, int] = {}
    for relative, offset, data, now in changed_session_files(folder, before, DEFAULT_LIMITS.max_member_bytes):
        sent[prefix + relative] = now
        if offset and not data:
            continue  # touched, not grown
        members[f"{SESSIONS}/{session_id}/{relative}"] = data
        if offset:
            offsets[f"{SESSIONS}/{session_id}/{relative}"] = offset
    return members, offsets
