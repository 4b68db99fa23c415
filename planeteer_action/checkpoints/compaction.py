"""Keeping few artifacts alive: which segments' pieces a new artifact takes over, and which artifacts may go.

A head names every segment that holds one of its pieces, so without care a long run would keep many
artifacts alive. When an artifact's head would name more than a limit of this attempt's artifacts (earlier
attempts' cannot be deleted by this job, so moving their pieces would gain nothing), the live pieces of the
smallest ones (they are on this machine) are written again into the new artifact, until it names a few
less: small segments are many and cheap to move, the large ones rarely move. Rewriting is what costs, and
alive artifacts cost nothing until the job ends, so the limit is loose during a run (`RUN_LIMITS`) and
tight for the run's final checkpoint (`FINAL_LIMITS`). A moved piece keeps its cache copy where it was.

A re-run picks among the two newest artifact heads of each attempt (`HEADS_PER_ATTEMPT`: the newest, and the
fallback before it), or the cache's newest head, whose every piece has a cache copy; older artifacts that are
still alive only hold pieces. So an artifact is deleted only once neither of those two heads names it: no
head a re-run could pick loses a piece.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable

from planeteer_action.checkpoints.segments import Head, PieceRef

# (compact when a head would name more than this many of this attempt's artifacts, down to this many)
RUN_LIMITS = (80, 70)
FINAL_LIMITS = (18, 15)  # with the segments the head before it names, at most 20 stay alive
HEADS_PER_ATTEMPT = 2


def take_over(
    head: Head, segment: str, chosen: Collection[str], uncached: Collection[str] = ()
) -> tuple[Head, list[PieceRef]]:
    """The head with the pieces of the `chosen` segments held by `segment` instead, and the refs moved (as they
    were, so their bytes can be found). A moved piece's cache copy stays where it was, unless that copy is
    missing (`uncached`): then `segment`'s own cache copy holds it."""

    def moved(ref: PieceRef) -> PieceRef:
        cached = ref.cache_place if ref.cache_place not in uncached else segment
        return dataclasses.replace(ref, segment=segment, cached_in=None if cached == segment else cached)

    pieces = tuple(moved(ref) if ref.segment in chosen else ref for ref in head.pieces)
    return Head(head.meta, pieces), [ref for ref in head.pieces if ref.segment in chosen]


def to_compact(
    head: Head, segment: str, movable: Callable[[str], bool], limits: tuple[int, int] = RUN_LIMITS
) -> set[str]:
    """The smallest movable segments whose pieces `segment` takes over, so that the head names at most
    `limits[1]` of them once it would name more than `limits[0]`."""
    above, down_to = limits
    own = [name for name in head.segments() if name != segment and movable(name)]
    if len(own) + 1 <= above:
        return set()
    live = {name: sum(ref.size for ref in head.pieces if ref.segment == name) for name in own}
    smallest = sorted((size, name) for name, size in live.items())
    return {name for _, name in smallest[: len(own) + 1 - down_to]}


def deletable(own: Iterable[str], newest: Head, newest_segment: str, previous: Iterable[str]) -> list[str]:
    """This attempt's artifacts (`own`) that neither the newest artifact head nor the one before it names."""
    keep = {newest_segment, *newest.segments(), *previous}
    return sorted(name for name in own if name not in keep)
