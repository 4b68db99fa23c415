"""What a piece of a checkpoint says about itself: its member names, its manifest (meta, a sha256 per member,
and where each appended range starts), and the public manifest a sealed piece shows in clear."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from planeteer_action.checkpoints.errors import CheckpointInvalid
from planeteer_action.plan.session_ids import plan_fingerprint

FORMAT = 2  # 1 was the single-zip checkpoint, which this version no longer reads
MANIFEST = "manifest.json"
PLAN = "plan.json"
PATCH = "workspace.patch"
SESSIONS = "sessions"

_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
"""A sha256 as the manifests and heads write it: 64 lowercase hex digits."""


@dataclass(frozen=True)
class CheckpointMeta:
    """Where a checkpoint comes from: which plan, which workflow run and attempt, and which commit."""

    plan_id: str
    run_id: str
    attempt: int
    sequence: int
    base_commit: str | None
    created_at: str
    plan_path: str

    @classmethod
    def from_json(cls, value: object) -> CheckpointMeta:
        if not isinstance(value, dict):
            raise CheckpointInvalid("checkpoint manifest has no meta object: the checkpoint is damaged")
        strings = ("plan_id", "run_id", "created_at", "plan_path")
        counters = ("attempt", "sequence")
        if (
            any(not isinstance(value.get(name), str) for name in strings)
            or not value["plan_id"]
            or any(type(value.get(name)) is not int or value[name] < 0 for name in counters)
            or not (value.get("base_commit") is None or _COMMIT.match(str(value["base_commit"])))
        ):
            raise CheckpointInvalid("checkpoint manifest's meta is malformed: the checkpoint is damaged")
        return cls(
            plan_id=value["plan_id"],
            run_id=value["run_id"],
            attempt=value["attempt"],
            sequence=value["sequence"],
            base_commit=value.get("base_commit"),
            created_at=value["created_at"],
            plan_path=value["plan_path"],
        )


def json_bytes(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode("utf-8")


def manifest_bytes(meta: CheckpointMeta, members: Mapping[str, bytes], offsets: Mapping[str, int]) -> bytes:
    """The manifest of a piece holding `members` (every member but the manifest itself); `offsets` says where in
    its file each appended range starts (absent: the member is the whole file)."""
    return json_bytes(
        {
            "format": FORMAT,
            "meta": dataclasses.asdict(meta),
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
            "offsets": {name: offset for name, offset in offsets.items() if offset},
        }
    )


def verified_manifest(members: Mapping[str, bytes]) -> tuple[CheckpointMeta, dict[str, int]]:
    """The manifest's meta and offsets, once every member is listed in it with its hash and every listed one is
    there."""
    if MANIFEST not in members:
        raise CheckpointInvalid(f"checkpoint has no {MANIFEST}: it is not a planeteer checkpoint")
    try:
        manifest: Any = json.loads(members[MANIFEST])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointInvalid(f"checkpoint's {MANIFEST} is not valid JSON: the checkpoint is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointInvalid(
            f"checkpoint's {MANIFEST} is not of format {FORMAT}: it was written by another planeteer version"
        )
    meta = CheckpointMeta.from_json(manifest.get("meta"))
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(h, str) and SHA256.match(h) for h in files.values()):
        raise CheckpointInvalid(f"checkpoint's {MANIFEST} has no valid file list: the checkpoint is damaged")
    unlisted = sorted(set(members) - {MANIFEST} - set(files))
    if unlisted:
        raise CheckpointInvalid(
            f"checkpoint member {unlisted[0]!r} is not listed in its manifest: it was tampered with"
        )
    missing = sorted(set(files) - set(members))
    if missing:
        raise CheckpointInvalid(
            f"checkpoint manifest lists {missing[0][:120]!r} but the archive lacks it: it is damaged"
        )
    for name, data in members.items():
        if name != MANIFEST and hashlib.sha256(data).hexdigest() != files[name]:
            raise CheckpointInvalid(
                f"checkpoint member {name!r} does not match its manifest hash: damaged or tampered with"
            )
    offsets = manifest.get("offsets", {})
    if not isinstance(offsets, dict) or not all(
        name in files and type(offset) is int and offset > 0 for name, offset in offsets.items()
    ):
        raise CheckpointInvalid(f"checkpoint's {MANIFEST} has malformed offsets: the checkpoint is damaged")
    return meta, offsets


def public_manifest(meta: CheckpointMeta) -> bytes:
    """What anyone may read of a sealed checkpoint: enough to pick an artifact, nothing of the plan."""
    public = {
        "format": FORMAT,
        "plan": plan_fingerprint(meta.plan_id),
        "run_id": meta.run_id,
        "attempt": meta.attempt,
        "sequence": meta.sequence,
        "created_at": meta.created_at,
    }
    return json_bytes(public)
