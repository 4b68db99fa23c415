"""Which stores a checkpoint goes to, and what each copy of its segment holds.

Every checkpoint goes to the cache (when the job may write it): a segment holding its head and the pieces
new since the one before, so each change is safe at the cost of what changed. Artifacts are what outlives
the cache (evicted after 7 days unused) and what `planeteer pull` reads over REST, but a job may create 500
and a run should leave few alive; an artifact per checkpoint would have to be compacted, uploading most of
the state again. So a checkpoint also goes out as an artifact, taking over every piece that so far is only
in cache copies, once those pieces reach a share of what the artifacts hold (`ARTIFACT_STEP`, at least
`MIN_ARTIFACT_STEP` bytes), once `ARTIFACT_INTERVAL` has passed with some waiting, when its cache copy
failed, at the run's last checkpoint, and always when there is no cache to write. The artifacts so grow in
steps that grow with the state: few of them, each byte in one artifact and one cache copy. A piece whose
cache copy failed is taken into the next cache copy (`resend`), so the cache's newest head always has all
its pieces in the cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection

from planeteer_action.checkpoints.segments import Head, PieceRef

MIN_ARTIFACT_STEP = 2 * 1024 * 1024
ARTIFACT_STEP = 0.5
ARTIFACT_INTERVAL = 20 * 60.0


def artifact_due(
    head: Head, segment: str, artifacts: Collection[str], on_hand: Callable[[PieceRef], bool], since_artifact: float
) -> bool:
    """Whether the checkpoint of `head` in `segment` should also go out as an artifact (not counting the run's
    last and a job without cache, which always do): `artifacts` are this run's segments that did, `on_hand`
    says whether a piece's bytes are on this machine, `since_artifact` is the time since the last one did."""
    waiting = sum(ref.size for ref in waiting_refs(head, segment, artifacts, on_hand))
    held = sum(ref.size for ref in head.pieces) - waiting
    due = waiting >= max(MIN_ARTIFACT_STEP, ARTIFACT_STEP * held)
    return due or (waiting > 0 and since_artifact >= ARTIFACT_INTERVAL)


def waiting_refs(
    head: Head, segment: str, artifacts: Collection[str], on_hand: Callable[[PieceRef], bool]
) -> list[PieceRef]:
    """The pieces no artifact holds yet that an artifact of `segment` would take over: those of the segments
    whose every piece is on this machine (this attempt's, and those a restore fetched from cache copies)."""
    away = {ref.segment for ref in head.pieces if not on_hand(ref)} - {segment}
    return [ref for ref in head.pieces if ref.segment not in artifacts and ref.segment not in away]


def resend(head: Head, segment: str, uncached: Collection[str], movable: Callable[[str], bool]) -> Head:
    """The head with `segment`'s cache copy holding the pieces whose cache copy is missing (`uncached`) and
    whose bytes are on this machine."""

    def placed(ref: PieceRef) -> PieceRef:
        if ref.cache_place not in uncached or ref.cache_place == segment or not movable(ref.cache_place):
            return ref
        return dataclasses.replace(ref, cached_in=None if ref.segment == segment else segment)

    return Head(head.meta, tuple(map(placed, head.pieces)))


def artifact_copy(head: Head, segment: str) -> set[str]:
    """The pieces (sha256) the artifact of `segment` holds."""
    return {ref.sha256 for ref in head.pieces if ref.segment == segment}


def cache_copy(head: Head, segment: str) -> set[str]:
    """The pieces (sha256) the cache copy of `segment` holds."""
    return {ref.sha256 for ref in head.pieces if ref.cache_place == segment}
