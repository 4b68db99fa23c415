"""Heads and segments: what one checkpoint upload is.

Each upload is a segment: a zip of the new head and the pieces no earlier upload carried, kept as a cache
copy (keyed by its name, `naming.cache_key`) and, at the checkpoints `placement` picks, also as an artifact
of that name, with the pieces it takes over. The head is a small piece of its own (sealed like every piece)
listing every piece a restore needs, in the order they are put together: its sha256, its size, the segment
that holds it, the segment whose cache copy holds it when that is another one, and what it is (the plan's
state, a git bundle, or a session's files). So the head alone tells a restore what to fetch, from either
store.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from planeteer_action.checkpoints.errors import CheckpointInvalid
from planeteer_action.checkpoints.manifest import SHA256, CheckpointMeta
from planeteer_action.checkpoints.naming import ARTIFACT_NAME
from planeteer_action.checkpoints.pieces import HEAD, Piece, build_piece
from planeteer_action.checkpoints.zip_io import Limits, check_members, open_zip, read_member, read_members, write_zip
from planeteer_action.plan.session_ids import belongs_to_plan

SEGMENT_HEAD = "head"
SEGMENT_PIECES = "pieces"
_HEADLESS = "the segment has no head: it is not a checkpoint of this planeteer version"
KINDS = ("state", "bundle", "session")


@dataclass(frozen=True)
class PieceRef:
    """One piece a head names: its sha256 and size, the segment (artifact name) holding it, and what it is."""

    sha256: str
    size: int
    segment: str
    kind: str  # one of KINDS
    session: str | None = None  # the session whose files it holds (kind "session")
    cached_in: str | None = None  # the segment whose cache copy holds it, when `segment`'s does not

    @property
    def cache_place(self) -> str:
        """The segment whose cache copy holds it."""
        return self.cached_in or self.segment

    def describe(self) -> str:
        what = f"session {self.session}" if self.session else self.kind
        return f"piece {self.sha256[:12]} ({what}, in {self.segment})"


@dataclass(frozen=True)
class Head:
    """The checkpoint a restore puts back: its meta and the pieces that make it, in order."""

    meta: CheckpointMeta
    pieces: tuple[PieceRef, ...]

    def segments(self) -> list[str]:
        """The segments holding its pieces, each once, in the order first needed."""
        return list(dict.fromkeys(ref.segment for ref in self.pieces))

    def to_bytes(self, key: str | None) -> bytes:
        segments = list(dict.fromkeys([*self.segments(), *(ref.cache_place for ref in self.pieces)]))
        index = {name: number for number, name in enumerate(segments)}
        listing = [
            [ref.sha256, ref.size, index[ref.segment], ref.kind, ref.session or "", index[ref.cache_place]]
            for ref in self.pieces
        ]
        body = json.dumps({"segments": segments, "pieces": listing}, separators=(",", ":")).encode()
        return build_piece(self.meta, {HEAD: body}, key)

    @classmethod
    def from_piece(cls, piece: Piece) -> Head:
        """The head a checked piece carries, once its listing is well formed and names only this plan's sessions."""
        if set(piece.members) != {HEAD} or piece.offsets:
            raise CheckpointInvalid(f"its head is not a head (it holds {sorted(piece.members)[:3]}): refused")
        try:
            body: Any = json.loads(piece.members[HEAD])
            segments, listing = body["segments"], body["pieces"]
            refs = tuple(_piece_ref(item, segments, piece.meta.plan_id) for item in listing)
        except (ValueError, TypeError, KeyError, IndexError):
            raise CheckpointInvalid(f"its {HEAD} is malformed: it is damaged") from None
        if len({ref.sha256 for ref in refs}) != len(refs):
            raise CheckpointInvalid(f"its {HEAD} names a piece twice: it is damaged")
        return cls(piece.meta, refs)


def _piece_ref(item: Any, segments: Any, plan_id: str) -> PieceRef:
    sha, size, index, kind, session, cached = item
    if (
        type(cached) is not int
        or cached < 0
        or not isinstance(segments[cached], str)
        or not ARTIFACT_NAME.match(segments[cached])
    ):
        raise ValueError("malformed cache place")
    if (
        not isinstance(sha, str)
        or not SHA256.match(sha)
        or type(size) is not int
        or size <= 0
        or type(index) is not int
        or index < 0
        or not isinstance(segments[index], str)
        or not ARTIFACT_NAME.match(segments[index])
        or kind not in KINDS
        or (kind == "session") != bool(session)
        or (session and not belongs_to_plan(session, plan_id))
    ):
        raise ValueError("malformed piece entry")
    cached_in = segments[cached] if cached != index else None
    return PieceRef(sha, size, segments[index], kind, session or None, cached_in)


def write_segment(head: bytes, pieces: Mapping[str, bytes]) -> bytes:
    """The artifact of one upload: the head and the pieces, stored (pieces are compressed or sealed already)."""
    members = {SEGMENT_HEAD: head, **{f"{SEGMENT_PIECES}/{sha}": data for sha, data in pieces.items()}}
    return write_zip(members, zipfile.ZIP_STORED)


def read_segment(data: bytes, limits: Limits) -> tuple[bytes, dict[str, bytes]]:
    """The head and the pieces (by the name they are stored under) of a segment, bounded by `limits`."""
    outer = _segment_limits(limits)
    with open_zip(data, outer) as archive:
        members = read_members(archive, outer, _is_segment_name)
    if SEGMENT_HEAD not in members:
        raise CheckpointInvalid(_HEADLESS)
    head = members.pop(SEGMENT_HEAD)
    return head, {name.removeprefix(f"{SEGMENT_PIECES}/"): piece for name, piece in members.items()}


def read_head(data: bytes, limits: Limits) -> bytes:
    """A segment's head alone, once every member's name, type and declared size passes `read_segment`'s checks:
    a restore needs the head to know what else to fetch, and reads (and checks) the pieces when it opens them."""
    outer = _segment_limits(limits)
    with open_zip(data, outer) as archive:
        head = next((i for i in check_members(archive, outer, _is_segment_name) if i.filename == SEGMENT_HEAD), None)
        if head is None:
            raise CheckpointInvalid(_HEADLESS)
        return read_member(archive, head)


def _segment_limits(limits: Limits) -> Limits:
    """A segment holds pieces whole: each member may be as large as the archive."""
    return dataclasses.replace(
        limits, max_member_bytes=limits.max_archive_bytes, max_total_bytes=limits.max_archive_bytes
    )


def _is_segment_name(name: str) -> bool:
    folder, _, sha = name.partition("/")
    return name == SEGMENT_HEAD or (folder == SEGMENT_PIECES and bool(SHA256.match(sha)))
