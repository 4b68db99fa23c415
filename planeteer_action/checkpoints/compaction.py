"""Keeping few artifacts alive: which segments' pieces a new segment takes over, and which segments may go.

Every upload is a new segment, and a head names every segment that holds one of its pieces, so without care
a long run would keep hundreds of artifacts alive. When a head would name more than a limit of segments of
this attempt (earlier attempts' cannot be deleted by this job, so moving their pieces would gain nothing),
the live pieces of the smallest ones (they are on this machine) are written again into the new segment,
until it names a few less: small segments are many and cheap to move, the large ones (a finished task's
work) rarely move. Rewriting is what costs, and alive artifacts cost nothing until the job ends, so the
limit is loose during a run (`RUN_LIMITS`) and tight for the run's final checkpoint (`FINAL_LIMITS`). The
uploader also moves, whatever the limits, the live pieces of segments whose cache copy failed, so that the
heads with a cache copy name only segments that have one too.

A re-run picks among the two newest heads of each attempt (`HEADS_PER_ATTEMPT`: the newest, and the
fallback before it); older segments that are still alive only hold pieces. So a segment is deleted only
once neither of those two heads names it: no head a re-run could pick loses a piece.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from planeteer_action.checkpoints.segments import Head, PieceRef

# (compact when a head would name more than this many of this attempt's segments, down to this many)
RUN_LIMITS = (80, 70)
FINAL_LIMITS = (18, 15)  # with the segments the head before it names, at most 20 stay alive
HEADS_PER_ATTEMPT = 2


def compact(
    head: Head,
    segment: str,
    movable: Callable[[str], bool],
    limits: tuple[int, int] = RUN_LIMITS,
    forced: Collection[str] = (),
) -> tuple[Head, list[PieceRef]]:
    """The head with the pieces of the smallest movable segments, and of the movable ones in `forced` (whatever
    the limits), moved into `segment`, and the refs moved (as they were, so their bytes can be found)."""
    above, down_to = limits
    own = [name for name in head.segments() if name != segment and movable(name)]
    must = {name for name in own if name in forced}
    excess = len(own) + 1 - down_to if len(own) + 1 > above else 0
    if not must and excess <= 0:
        return head, []
    live = {name: sum(ref.size for ref in head.pieces if ref.segment == name) for name in own if name not in must}
    smallest = sorted((size, name) for name, size in live.items())
    chosen = must | {name for _, name in smallest[: max(0, excess - len(must))]}
    moved = [ref for ref in head.pieces if ref.segment in chosen]
    pieces = tuple(
        PieceRef(ref.sha256, ref.size, segment, ref.kind, ref.session) if ref.segment in chosen else ref
        for ref in head.pieces
    )
    return Head(head.meta, pieces), moved


def deletable(own: Iterable[str], newest: Head, newest_segment: str, previous: Iterable[str]) -> list[str]:
    """This attempt's segments (`own`) that neither the newest head nor the one before it names."""
    keep = {newest_segment, *newest.segments(), *previous}
    return sorted(name for name in own if name not in keep)
