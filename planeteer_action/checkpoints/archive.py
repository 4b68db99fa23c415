"""A checkpoint put together from its pieces, and the checks that need all of it.

A checkpoint holds the plan JSON, the Copilot `session-state/<id>/` folders of the plan's sessions, and the
work: with shared isolation, the working tree's changes as a patch; with worktree isolation, the plan's
branches as a chain of git bundles and its unfinished tasks' worktree changes (`branches`). It travels as
pieces (`pieces`) that a head lists (`segments`). `assemble` takes the pieces in the head's order: a member
without an offset is the whole file (a later one replaces it), one with an offset appends a range that must
start where the file ends so far, and each git bundle is the next link of the chain. Then the plan, the
session folders, the patches and the branch names are checked before anything is written, and the sessions
are written only inside the Copilot home (`session_files`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from planeteer_action.checkpoints.branches import GIT_BUNDLE, BranchState
from planeteer_action.checkpoints.errors import CheckpointInvalid
from planeteer_action.checkpoints.manifest import PATCH, PLAN, SESSIONS, CheckpointMeta
from planeteer_action.checkpoints.patch_safety import link_outside_checkout, path_outside_checkout
from planeteer_action.checkpoints.pieces import Piece
from planeteer_action.checkpoints.session_files import StagedSessions, check_session_tree
from planeteer_action.checkpoints.zip_io import DEFAULT_LIMITS, Limits, check_totals
from planeteer_action.plan.model import Plan


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint that passed every check. Nothing is written until its sessions are staged."""

    meta: CheckpointMeta
    plan_bytes: bytes = field(repr=False)
    changes: bytes = field(repr=False)
    session_files: Mapping[str, Mapping[str, bytes]] = field(repr=False)  # id -> relative path -> bytes
    branches: BranchState | None = None  # with worktree isolation

    @property
    def session_ids(self) -> list[str]:
        return sorted(self.session_files)

    def stage_sessions(self, copilot_home: Path) -> StagedSessions:
        """Write every session into a staging folder of `copilot_home`, ready to be moved into place."""
        return StagedSessions(copilot_home, self.session_files)


def assemble(meta: CheckpointMeta, pieces: Sequence[Piece], limits: Limits = DEFAULT_LIMITS) -> Checkpoint:
    """The checkpoint the pieces make, in order, once it passes every check; writes nothing."""
    members: dict[str, bytearray] = {}
    bundles: list[bytes] = []
    for piece in pieces:
        for name, data in piece.members.items():
            offset = piece.offsets.get(name, 0)
            if name == GIT_BUNDLE:
                bundles.append(data)
            elif offset == 0:
                members[name] = bytearray(data)
            elif name not in members or len(members[name]) != offset:
                raise CheckpointInvalid(f"its {name[:120]!r} continues at byte {offset}, where it does not end")
            else:
                members[name] += data
        check_totals(len(members), sum(map(len, members.values())), limits, "refused")
        if any(len(data) > limits.max_member_bytes for data in members.values()):
            raise CheckpointInvalid(f"a file it holds grows over the per-file limit of {limits.max_member_bytes}")
    whole = {name: bytes(data) for name, data in members.items()}
    if PLAN not in whole:
        raise CheckpointInvalid(f"checkpoint has no {PLAN}: it is damaged")
    sessions: dict[str, dict[str, bytes]] = {}
    for name, data in whole.items():
        parts = name.split("/", 2)
        if parts[0] == SESSIONS:
            sessions.setdefault(parts[1], {})[parts[2]] = data
    for session_id, files in sessions.items():
        check_session_tree(session_id, files)
    checkpoint = Checkpoint(
        meta=meta,
        plan_bytes=whole[PLAN],
        changes=whole.get(PATCH, b""),
        session_files=sessions,
        branches=BranchState.from_members(whole, tuple(bundles)),
    )
    _check_contents(checkpoint)
    return checkpoint


def _check_contents(checkpoint: Checkpoint) -> None:
    """The plan must be a plan of the manifest's id, and the patch must stay inside the checkout."""
    try:
        plan = Plan.model_validate(json.loads(checkpoint.plan_bytes))
    except (ValueError, ValidationError):
        raise CheckpointInvalid(f"its {PLAN} is not a valid plan: it was damaged or forged") from None
    if plan.id != checkpoint.meta.plan_id:
        raise CheckpointInvalid(f"its {PLAN} is of plan {plan.id!r}, not the manifest's: it was forged")
    if checkpoint.branches is not None:
        if checkpoint.meta.base_commit is None:
            raise CheckpointInvalid("it carries branches but no base commit they start from: refused")
        checkpoint.branches.check_names(plan)
    unsafe = path_outside_checkout(checkpoint.changes)
    if unsafe is not None:
        raise CheckpointInvalid(f"its workspace patch writes to {unsafe[:120]!r}, outside the checkout: refused")
    link = link_outside_checkout(checkpoint.changes)
    if link is not None:
        raise CheckpointInvalid(
            f"its workspace patch makes the link {link[0][:120]!r} point to {link[1][:120]!r}, "
            "outside the checkout: refused"
        )
