"""Pieces: the immutable parts a checkpoint is made of, each checked on its own before anything is trusted.

A piece is a small zip of checkpoint members (the plan, a session's files or appended ranges of them, a git
bundle, or a head) with a manifest giving the sha256 of every member, where each appended range starts, and
the meta naming the plan and the workflow run it was made for. With a `state-key` it is sealed (`sealing`),
so that meta cannot be read or changed without the key. Pieces are named by the sha256 of their bytes, which
the head that lists them also gives; `open_piece` checks sizes, names, types, the manifest, the key, the plan
and the run, writing nothing. What needs the whole checkpoint (the plan is a plan, the patches stay inside the
checkout, the sessions can be written) is `archive`'s job once the pieces are put together.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from planeteer_action.checkpoints.branches import GIT_BUNDLE, GIT_STATE
from planeteer_action.checkpoints.errors import (
    CheckpointInvalid,
    CheckpointKeyMismatch,
    CheckpointOfOtherPlan,
    CheckpointOfOtherRun,
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
    verified_manifest,
)
from planeteer_action.checkpoints.sealing import PUBLIC_MANIFEST, SEALED, seal, unseal
from planeteer_action.checkpoints.zip_io import DEFAULT_LIMITS, Limits, check_totals, open_zip, read_members, write_zip
from planeteer_action.plan.session_ids import belongs_to_plan, is_planeteer_session

HEAD = "head.json"


@dataclass(frozen=True)
class Piece:
    """A piece that passed every check of its own: its meta, members, and where appended ranges start."""

    meta: CheckpointMeta
    members: Mapping[str, bytes] = field(repr=False)
    offsets: Mapping[str, int] = field(default_factory=dict)


def piece_id(data: bytes) -> str:
    """A piece's name: the sha256 of its bytes, as a head lists it."""
    return hashlib.sha256(data).hexdigest()


def build_piece(
    meta: CheckpointMeta,
    members: Mapping[str, bytes],
    key: str | None,
    *,
    offsets: Mapping[str, int] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """The piece's bytes, sealed when `key` is given (an empty key counts as none, as an unset secret)."""
    for name, data in members.items():
        if len(data) > limits.max_member_bytes:
            raise CheckpointTooLarge(
                f"{name} is {len(data)} bytes, over the per-file limit of {limits.max_member_bytes}: "
                "keep large files out of the plan's work and sessions"
            )
    check_totals(len(members) + 1, sum(map(len, members.values())), limits, "keep large files out of the plan's work")
    manifest = manifest_bytes(meta, members, offsets or {})
    inner = write_zip({MANIFEST: manifest, **members}, zipfile.ZIP_DEFLATED)
    return seal(inner, key, public_manifest(meta)) if key else inner


def open_piece(
    data: bytes,
    *,
    key: str | None,
    expected_plan_id: str | None,
    expected_run_id: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Piece:
    """Check a piece completely, writing nothing; raise a CheckpointError naming the first problem."""
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
                members = read_members(inner_archive, limits, _is_member_name)
        else:
            public = None
            members = read_members(archive, limits, _is_member_name)
    meta, offsets = verified_manifest(members)
    if public is not None and public != public_manifest(meta):
        raise CheckpointInvalid(f"checkpoint's {PUBLIC_MANIFEST} disagrees with its sealed manifest: refused")
    if expected_plan_id is not None and meta.plan_id != expected_plan_id:
        raise CheckpointOfOtherPlan(f"checkpoint is of plan {meta.plan_id!r}, not {expected_plan_id!r}: it is ignored")
    if expected_run_id is not None and meta.run_id != expected_run_id:
        raise CheckpointOfOtherRun(f"it was made for run {meta.run_id[:40]!r}, not run {expected_run_id}: refused")
    del members[MANIFEST]
    for name in members:
        parts = name.split("/", 2)
        if parts[0] == SESSIONS and not belongs_to_plan(parts[1], meta.plan_id):
            raise CheckpointInvalid(f"checkpoint holds session {parts[1]!r}, which is not its plan's: refused")
    return Piece(meta, members, offsets)


def _is_member_name(name: str) -> bool:
    parts = name.split("/")
    if parts[0] == SESSIONS:
        return len(parts) >= 3 and is_planeteer_session(parts[1])
    return name in (MANIFEST, PLAN, PATCH, GIT_STATE, GIT_BUNDLE, HEAD)
