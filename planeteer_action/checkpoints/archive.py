"""Checkpoints: one zip that lets a re-run on a fresh machine carry on where the last attempt stopped.

A checkpoint holds the plan JSON, the Copilot `session-state/<id>/` folders of the plan's sessions, the
work, and a manifest with the sha256 of every member (`manifest`). The work is, with shared isolation, the
working tree's changes as a patch; with worktree isolation, the plan's branches as a git bundle and its
unfinished tasks' worktree changes (`branches`). With a `state-key` secret it is sealed (`sealing`). It
travels as a workflow artifact, so `open_checkpoint` treats it as untrusted: sizes, names, types, hashes,
the plan, the session folders, the patches and the branch names are checked before anything is written,
and the sessions are written only inside the Copilot home (`session_files`).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from planeteer_action.checkpoints.branches import GIT_BUNDLE, GIT_STATE, WORKTREE_PATCHES, BranchState
from planeteer_action.checkpoints.errors import (
    CheckpointInvalid,
    CheckpointKeyMismatch,
    CheckpointOfOtherPlan,
    CheckpointTooLarge,
)
from planeteer_action.checkpoints.manifest import (
    MANIFEST,
    PATCH,
    PLAN,
    SESSIONS,
    CheckpointMeta,
    manifest_bytes,
    public_manifest,
    verified_meta,
)
from planeteer_action.checkpoints.patch_safety import link_outside_checkout, path_outside_checkout
from planeteer_action.checkpoints.sealing import PUBLIC_MANIFEST, SEALED, seal, unseal
from planeteer_action.checkpoints.session_files import StagedSessions, check_session_tree, read_session_folder
from planeteer_action.checkpoints.zip_io import DEFAULT_LIMITS, Limits, check_totals, open_zip, read_members, write_zip
from planeteer_action.plan.model import Plan
from planeteer_action.plan.session_ids import belongs_to_plan, is_planeteer_session


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


def build_checkpoint(
    meta: CheckpointMeta,
    plan_bytes: bytes,
    copilot_home: Path,
    session_ids: Iterable[str],
    changes: bytes,
    key: str | None = None,
    *,
    branches: BranchState | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """The checkpoint's bytes, sealed when `key` is given (an empty key counts as none, as an unset secret).

    Session folders that do not exist, and ids that are not this plan's, are skipped; so are symlinks,
    sockets, fifos, files that vanish while being read, and file names a reader would refuse.
    """
    work = {PLAN: plan_bytes, **({PATCH: changes} if changes else {}), **(branches.members() if branches else {})}
    members = dict(work)
    for session_id in sorted(set(session_ids)):
        if belongs_to_plan(session_id, meta.plan_id):
            folder = copilot_home / "session-state" / session_id
            for relative, data in read_session_folder(folder, limits.max_member_bytes):
                members[f"{SESSIONS}/{session_id}/{relative}"] = data
    for name, data in work.items():
        if len(data) > limits.max_member_bytes:
            raise CheckpointTooLarge(
                f"{name} is {len(data)} bytes, over the per-file limit of {limits.max_member_bytes}: "
                "keep large files out of the plan's work"
            )
    check_totals(
        len(members) + 1,
        sum(map(len, members.values())),
        limits,
        "keep large files out of the plan's sessions and working tree",
    )
    inner = write_zip({MANIFEST: manifest_bytes(meta, members), **members}, zipfile.ZIP_DEFLATED)
    return seal(inner, key, public_manifest(meta)) if key else inner


def open_checkpoint(
    data: bytes, *, key: str | None, expected_plan_id: str | None, limits: Limits = DEFAULT_LIMITS
) -> Checkpoint:
    """Check a checkpoint completely, writing nothing; raise a CheckpointError naming the first problem."""
    if len(data) > limits.max_archive_bytes:
        raise CheckpointTooLarge(
            f"checkpoint is {len(data)} bytes, over the limit of {limits.max_archive_bytes}: start the plan afresh"
        )
    with open_zip(data, limits) as archive:
        sealed = SEALED in archive.namelist()
        if sealed and not key:
            raise CheckpointKeyMismatch(
                "this checkpoint is encrypted: set the state-key input to the secret used when it was saved"
            )
        if key and not sealed:
            raise CheckpointKeyMismatch(
                "this checkpoint is not encrypted although a state-key is set, and a plain checkpoint could "
                "have replaced an encrypted one: delete the artifact, or unset state-key if it is yours"
            )
        if key:
            public, inner = unseal(archive, key, limits)
            with open_zip(inner, limits) as inner_archive:
                members = read_members(inner_archive, limits, _is_inner_name)
        else:
            public = None
            members = read_members(archive, limits, _is_inner_name)
    checkpoint = _checkpoint_from(members)
    if public is not None and public != public_manifest(checkpoint.meta):
        raise CheckpointInvalid(f"checkpoint's {PUBLIC_MANIFEST} disagrees with its sealed manifest: refused")
    if expected_plan_id is not None and checkpoint.meta.plan_id != expected_plan_id:
        raise CheckpointOfOtherPlan(
            f"checkpoint is of plan {checkpoint.meta.plan_id!r}, not {expected_plan_id!r}: it is ignored"
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


def _is_inner_name(name: str) -> bool:
    parts = name.split("/")
    if parts[0] == SESSIONS:
        return len(parts) >= 3 and is_planeteer_session(parts[1])
    if parts[:2] == WORKTREE_PATCHES.split("/"):
        return len(parts) == 3 and parts[2].endswith(".patch")
    return name in (MANIFEST, PLAN, PATCH, GIT_STATE, GIT_BUNDLE)


def _checkpoint_from(members: dict[str, bytes]) -> Checkpoint:
    """Check the manifest against the members, then group the session files by id."""
    meta = verified_meta(members)
    if PLAN not in members:
        raise CheckpointInvalid(f"checkpoint has no {PLAN}: it is damaged")
    sessions: dict[str, dict[str, bytes]] = {}
    for name, data in members.items():
        parts = name.split("/", 2)
        if parts[0] == SESSIONS:
            if not belongs_to_plan(parts[1], meta.plan_id):
                raise CheckpointInvalid(f"checkpoint holds session {parts[1]!r}, which is not its plan's: refused")
            sessions.setdefault(parts[1], {})[parts[2]] = data
    for session_id, files in sessions.items():
        check_session_tree(session_id, files)
    return Checkpoint(
        meta=meta,
        plan_bytes=members[PLAN],
        changes=members.get(PATCH, b""),
        session_files=sessions,
        branches=BranchState.from_members(members),
    )
