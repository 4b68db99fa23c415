"""Fetching a checkpoint's segments and checking its pieces, strictly, before anything is put together.

A run's segments are its artifacts (listed once over REST, for every attempt whose artifacts still exist)
and their cache copies. A head names, for each piece, the segment that holds it and the one whose cache copy
does; a piece is fetched from the artifact while it is there, else ("Re-run all jobs" deletes artifacts, and
most checkpoints are only cache copies, `placement`) from that cache copy. The copies are downloaded in
parallel, each at most once and each capped at the archive limit. Every piece must then be where the head
says, of the size and sha256 it gives, decrypt with the state-key, and be of the head's plan and run; a
refusal names the piece and why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from planeteer_action.checkpoints.compaction import HEADS_PER_ATTEMPT
from planeteer_action.checkpoints.errors import CheckpointError, CheckpointInvalid
from planeteer_action.checkpoints.naming import CACHE_KEY, cache_prefix, parse_artifact_name, segment_cache_key
from planeteer_action.checkpoints.pieces import Piece, open_piece, piece_id
from planeteer_action.checkpoints.segments import Head, PieceRef, read_head, read_segment
from planeteer_action.checkpoints.zip_io import DEFAULT_LIMITS
from planeteer_action.github._twirp import ServiceError
from planeteer_action.github.cache import ActionsCache, CacheHit
from planeteer_action.github.run_artifacts import RunArtifact, RunArtifacts

Warn = Callable[[str], None]
Place = tuple[str, str]  # ("artifact" or "cache", segment name): one copy of a segment
PARALLEL_DOWNLOADS = 8


class RunSegments:
    """The segments of one plan's checkpoints in one run, from its artifacts or their cache copies."""

    def __init__(
        self, state_name: str, run_id: int, rest: RunArtifacts | None, cache: ActionsCache | None, warn: Warn
    ) -> None:
        self.state_name, self.run_id = state_name, run_id
        self._rest, self._cache = rest, cache
        self._artifacts: dict[str, RunArtifact] = {}
        self._downloads: dict[Place, Future[bytes]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=PARALLEL_DOWNLOADS, thread_name_prefix="segment")
        self._cache_newest: tuple[str, CacheHit] | None = None  # what the cache's lookup by prefix found
        self._cache_lookup: Future[CacheHit | None] | None = None
        if cache is not None:  # looked up while the artifacts are listed: a restore waits on both before anything
            prefix = cache_prefix(state_name, run_id)
            self._cache_lookup = self._pool.submit(cache.find, prefix + "-latest", [prefix])
        if rest is not None:
            try:
                listed = rest.list(run_id, name_prefix="planeteer-")
                self._artifacts = {a.name: a for a in listed if not a.expired and self.order(a.name) is not None}
            except ServiceError as exc:
                warn(f"could not list the checkpoints of run {run_id}: {exc}")

    @property
    def reads_cache(self) -> bool:
        """Whether the cache copies can be read (only inside a GitHub Actions job)."""
        return self._cache is not None

    def order(self, name: str) -> tuple[int, int] | None:
        """(attempt, sequence) of a segment of this plan, or None for any other name."""
        return parse_artifact_name(name, self.state_name)

    def heads(self, warn: Warn, before_attempt: int | None) -> list[tuple[tuple[int, int], str, str]]:
        """The segments whose heads a restore may pick, as ((attempt, sequence), origin, name), newest first: the
        two newest of each attempt's artifacts (older ones only hold pieces, `compaction`), and the cache's
        newest segment (there is no listing of cache entries: it is looked up by prefix, and downloaded if tried)."""
        newest: dict[int, list[tuple[int, int]]] = {}
        for order in filter(None, map(self.order, self._artifacts)):
            newest.setdefault(order[0], []).append(order)
        pickable = {order for orders in newest.values() for order in sorted(orders)[-HEADS_PER_ATTEMPT:]}
        found = [(self.order(name), "artifact", name) for name in self._artifacts if self.order(name) in pickable]
        if self._cache_lookup is not None:
            try:
                hit = self._cache_lookup.result()  # downloaded only if its head is tried
            except ServiceError as exc:
                warn(f"could not read the cached checkpoint of run {self.run_id}: {exc}")
                hit = None
            if hit is not None and CACHE_KEY.search(hit.key):
                name = hit.key.removeprefix(f"planeteer-run{self.run_id}-")
                self._cache_newest = (name, hit)
                found.append((self.order(name), "cache", name))
        candidates = [(order, origin, name) for order, origin, name in found if order is not None]
        if before_attempt is not None:
            candidates = [c for c in candidates if c[0][0] < before_attempt]
        return sorted(candidates, key=lambda c: (c[0], c[1] == "artifact"), reverse=True)

    def head_segment(self, name: str, origin: str) -> bytes:
        """The segment whose head a restore tries, from where `heads` found it."""
        if origin == "cache" and self._cache is not None and self._cache_newest and self._cache_newest[0] == name:
            return self._cache.download(self._cache_newest[1], max_bytes=DEFAULT_LIMITS.max_archive_bytes)
        return self.fetch(("artifact", name) if name in self._artifacts else ("cache", name))

    def is_artifact(self, name: str) -> bool:
        """Whether the segment `name` is one of the run's artifacts (listed, not expired)."""
        return name in self._artifacts

    def place(self, ref: PieceRef) -> Place:
        """Where to fetch a piece: the artifact holding it while that is there, else the cache copy that does."""
        if ref.segment in self._artifacts:
            return "artifact", ref.segment
        return "cache", ref.cache_place

    def prefetch(self, first: list[str]) -> None:
        """Start downloading every listed artifact: the heads `first` (in that order), then the rest, largest
        first. A head names most of them (pruning deletes the others), and a restore would otherwise ask for them
        only once the head's own segment is in."""
        by_size = sorted(self._artifacts, key=lambda name: self._artifacts[name].size, reverse=True)
        for name in dict.fromkeys([*first, *by_size]):
            if name in self._artifacts:
                self._start(("artifact", name))

    def fetch(self, place: Place) -> bytes:
        """One copy of a segment, downloaded once (in the background, if `prefetch` asked for it)."""
        return self._start(place).result()

    def fetch_pieces(self, head: Head) -> dict[Place, dict[str, bytes]]:
        """The pieces (by sha256) of every segment copy the head's pieces are fetched from, downloaded in
        parallel, the largest listed first: the last to arrive is what a restore waits for, and requests go out
        one after the other even from parallel threads."""
        listed = {("artifact", name): artifact.size for name, artifact in self._artifacts.items()}
        places = sorted(
            dict.fromkeys(map(self.place, head.pieces)), key=lambda place: listed.get(place, 0), reverse=True
        )
        downloads = [self._start(place) for place in places]
        return {
            place: read_segment(download.result(), DEFAULT_LIMITS)[1]
            for place, download in zip(places, downloads, strict=True)
        }

    def close(self) -> None:
        """Stop what was asked for and is not needed any more."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _start(self, place: Place) -> Future[bytes]:
        with self._lock:
            if place not in self._downloads:
                self._downloads[place] = self._pool.submit(self._download, place)
            return self._downloads[place]

    def _download(self, place: Place) -> bytes:
        origin, name = place
        limit = DEFAULT_LIMITS.max_archive_bytes
        artifact = self._artifacts.get(name)
        data: bytes | None = None
        if origin == "artifact" and artifact is not None and self._rest is not None:
            data = self._rest.download(artifact.id, max_bytes=limit)
        elif origin == "cache" and self._cache is not None:
            entry = self._cache.restore(segment_cache_key(self.run_id, name), [], max_bytes=limit)
            data = entry[1] if entry is not None else None
        if data is None:
            raise CheckpointInvalid(f"its segment {name} is missing: neither its artifact nor its cache copy is there")
        return data


def open_head(
    data: bytes, name: str, order: tuple[int, int], key: str | None, plan_id: str | None, run_id: int
) -> Head:
    """The head in the segment `name`, once it is this plan's and run's and says it is that segment's."""
    head = Head.from_piece(
        open_piece(read_head(data, DEFAULT_LIMITS), key=key, expected_plan_id=plan_id, expected_run_id=str(run_id))
    )
    if (head.meta.attempt, head.meta.sequence) != order:
        raise CheckpointInvalid(
            f"its head says it is save {head.meta.sequence} of attempt {head.meta.attempt}, not {name}'s: refused"
        )
    return head


def open_pieces(
    head: Head, copies: dict[Place, dict[str, bytes]], key: str | None, place: Callable[[PieceRef], Place]
) -> list[Piece]:
    """Every piece the head names, in its order, each taken from the copy `place` gives and checked on its own."""
    opened = []
    for ref in head.pieces:
        data = copies.get(place(ref), {}).get(ref.sha256)
        if data is None:
            raise CheckpointInvalid(f"{ref.describe()} is missing: refused")
        if len(data) != ref.size or piece_id(data) != ref.sha256:
            raise CheckpointInvalid(f"{ref.describe()} does not match its sha256: tampered with")
        try:
            opened.append(
                open_piece(data, key=key, expected_plan_id=head.meta.plan_id, expected_run_id=head.meta.run_id)
            )
        except CheckpointError as exc:
            raise type(exc)(f"{ref.describe()}: {exc}") from None
    return opened
