"""Checkpoints in a workflow: packed after every task state change and uploaded in the background, each
one a segment (the new head and the pieces not uploaded before) kept in the cache, which survives "Re-run
all jobs", and at the checkpoints `placement` picks also uploaded as an artifact, which outlives the cache.

At most one upload is in flight and one waits; a newer request replaces the waiting one (the upload reads
the plan when it starts, so the newest state wins). How many go out, and how often, is rationed by
`UploadBudget`, so that no plan exceeds GitHub's 500 artifacts per job; how many stay alive, by `placement`
and compaction.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from planeteer_action.action.context import ActionContext
from planeteer_action.action.upload_budget import DEFAULT_BUDGET, UploadBudget
from planeteer_action.checkpoints.compaction import FINAL_LIMITS, RUN_LIMITS, deletable, take_over, to_compact
from planeteer_action.checkpoints.naming import artifact_name, cache_key, parse_artifact_name
from planeteer_action.checkpoints.packer import Ledger, Packed, PackSource, pack
from planeteer_action.checkpoints.placement import artifact_copy, artifact_due, cache_copy, resend, waiting_refs
from planeteer_action.checkpoints.restore import Restored
from planeteer_action.checkpoints.segments import Head, PieceRef, write_segment
from planeteer_action.checkpoints.workspace import WorkspaceChangesError
from planeteer_action.engine.events import Event, RunFinished, TaskDone, TaskFailed, TaskInterrupted, TaskStarted
from planeteer_action.errors import PlaneteerError
from planeteer_action.github._twirp import ServiceError
from planeteer_action.github.artifacts import ArtifactService
from planeteer_action.github.cache import ActionsCache
from planeteer_action.plan.lock import lock_path
from planeteer_action.plan.store import markdown_path, write_atomic

Warn = Callable[[str], None]
LEDGER = "pieces.json"  # beside the upload record: what has travelled (`packer.Ledger`)
PIECE_STORE = "pieces"  # beside it: this attempt's pieces, which compaction writes again
PACK_TRIES = 3  # a checkpoint that caught a task finishing is packed, at most this many times in all


@dataclass(frozen=True)
class CheckpointSource:
    """Where this attempt's checkpoints are packed from."""

    context: ActionContext
    state_name: str
    plan_path: Path
    working_directory: Path
    copilot_home: Path
    base_commit: str | None
    key: str | None

    def pack(self, ledger: Ledger, sequence: int, segment: str) -> Packed:
        """What changed since `ledger` as pieces of `segment`, with the head of the whole checkpoint."""
        exclude = [self.plan_path, markdown_path(self.plan_path), lock_path(self.plan_path), self.copilot_home]
        source = PackSource(
            self.plan_path,
            self.working_directory,
            self.copilot_home,
            self.base_commit,
            self.key,
            exclude,
            _relative(self.plan_path, self.working_directory),
        )
        return pack(source, ledger, self.context.run_attempt, sequence, segment)


@dataclass
class UploadRecord:
    """Kept in the state folder so that the final `always()` step knows what already went out."""

    sequence: int = 0
    plan_sha256: str | None = None  # the plan the newest checkpoint holds
    cached: bool = False  # whether the newest checkpoint has its cache copy
    # This attempt's segments without a cache copy that hold a piece of the newest head: their pieces travel
    # again (`CheckpointUploader._resent`), or a cache-only restore would miss them.
    uncached: list[str] = field(default_factory=list)
    failed_copies: int = 0  # cache copies that failed in a row
    artifact: str | None = None  # the newest checkpoint that also went out as an artifact
    artifact_plan_sha256: str | None = None  # the plan it holds
    artifact_at: float | None = None  # when it went out, or when this machine's first checkpoint did (time.time())
    attempt: int = 0  # the run attempt `uploads` counts for
    uploads: int = 0  # checkpoints this attempt made (failed tries too: they count against the limit)
    uploaded_at: float | None = None  # when the newest of them was started (time.time())

    @classmethod
    def load(cls, path: Path) -> UploadRecord:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return cls()

    def save(self, path: Path) -> None:
        write_atomic(path, json.dumps(self.__dict__).encode())


class CheckpointUploader:
    """Uploads checkpoints one at a time on a background thread; a newer request replaces a waiting one.

    Tasks never wait for an upload. Failures are reported as warnings and the next request tries again.
    A cache that this job may only read gets no copies.
    """

    def __init__(
        self,
        source: CheckpointSource,
        artifacts: ArtifactService,
        cache: ActionsCache | None,
        record_path: Path,
        warn: Warn,
        budget: UploadBudget = DEFAULT_BUDGET,
    ) -> None:
        self._source = source
        self._artifacts = artifacts
        self._cache = cache if cache is not None and cache.can_save else None
        self._budget = budget
        self._paused_warned = False
        self._record_path = record_path
        self._record = UploadRecord.load(record_path)
        self._ledger_path = record_path.with_name(LEDGER)
        self._store = record_path.with_name(PIECE_STORE)
        self._warn = warn
        self._wanted = 0
        self._served = 0
        self._final = False  # the waiting request is a run's last: the budget's reserve, the tight compaction
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="checkpoint-uploader", daemon=True)
        self._thread.start()

    def __call__(self, event: Event) -> None:
        if isinstance(event, TaskStarted | TaskDone | TaskFailed | TaskInterrupted | RunFinished):
            self.request(final=isinstance(event, RunFinished))

    def request(self, *, final: bool = False) -> None:
        with self._cond:
            self._wanted += 1
            self._final = self._final or final
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until everything requested so far is uploaded; False if that takes longer than `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._wanted
            while self._served < target or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def finish(self, timeout: float) -> bool:
        """Wait for the uploads requested so far, then make sure the newest upload holds the plan on disk and
        has its cache copy (what a re-run, even after "Re-run all jobs", comes back to). False if that takes
        longer than `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._served < self._wanted:  # a waiting request becomes the final one: no interval holds it back
                self._final = True
                self._cond.notify_all()
        if not self.flush(timeout):
            return False
        if self._up_to_date():
            return True
        self.request(final=True)
        return self.flush(max(0.0, deadline - time.monotonic())) and self._up_to_date()

    def upload_if_changed(self, timeout: float = 300) -> bool:
        """The final step's job: `finish`, saying whether anything had to be uploaded for it."""
        if self._up_to_date():
            return False
        return self.finish(timeout)

    def _up_to_date(self) -> bool:
        current = hashlib.sha256(self._source.plan_path.read_bytes()).hexdigest()
        with self._cond:
            record = self._record
            in_artifacts = current == record.artifact_plan_sha256
            return in_artifacts and current == record.plan_sha256 and (self._cache is None or not record.uncached)

    def _next_request(self) -> bool:
        """Wait (holding the condition) until a request may go out now; False once closed with none that may."""
        while True:
            if self._served >= self._wanted:
                if self._closed:
                    return False
                self._cond.wait()
                continue
            wait = self._budget_wait(self._final)
            if wait is None:  # no budget left for this kind: the final checkpoint carries the newest state
                self._served, self._final = self._wanted, False
                self._cond.notify_all()
                self._warn_paused()
            elif wait <= 0:
                return True
            elif self._closed:
                return False
            else:
                self._cond.wait(wait)

    def _budget_wait(self, final: bool) -> float | None:
        record = self._record
        used = record.uploads if record.attempt == self._source.context.run_attempt else 0
        since_last = time.time() - record.uploaded_at if record.uploaded_at is not None else float("inf")
        return self._budget.wait(used, since_last, final=final)

    def _warn_paused(self) -> None:
        if not self._paused_warned:
            self._paused_warned = True
            self._warn(
                f"checkpoint uploads are paused: this attempt has used its {self._budget.per_attempt} artifacts "
                "but for the few kept for the final checkpoint, which still goes out (GitHub allows 500 per job)"
            )

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._next_request():
                    return
                target, final = self._wanted, self._final
                self._final = False
                self._busy = True
            try:
                self._upload_once(final)
            except (PlaneteerError, ServiceError, OSError, ValueError) as exc:
                self._warn(f"checkpoint upload failed (the next change will try again): {exc}")
            except Exception as exc:  # the thread must live on: without it no checkpoint would be saved
                self._warn(f"checkpoint upload failed (the next change will try again): {type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._served = target
                    self._busy = False
                    self._cond.notify_all()

    def _upload_once(self, final: bool) -> None:
        """One upload. A final one that compacted is followed by one more: the head before it stays the fallback
        until the next upload, and only then can the segments that head alone names go."""
        if self._upload_segment(FINAL_LIMITS if final else RUN_LIMITS, final) and final:
            self._upload_segment(FINAL_LIMITS, final)

    def _upload_segment(self, limits: tuple[int, int], final: bool) -> bool:
        """Pack, keep the cache copy, and when `placement` says so upload the artifact (taking over what only
        cache copies hold, compacting) and prune; whether compaction moved pieces."""
        record, source = self._record, self._source
        # A failed create still reserves its name, so every try takes a new sequence number.
        sequence = record.sequence + 1
        attempt = source.context.run_attempt
        record.uploads = (record.uploads if record.attempt == attempt else 0) + 1
        record.sequence, record.attempt, record.uploaded_at = sequence, attempt, time.time()
        record.save(self._record_path)
        name = artifact_name(source.state_name, attempt, sequence)
        ledger = Ledger.load(self._ledger_path, str(source.context.run_id))
        packed = self._pack(ledger, sequence, name)
        self._store.mkdir(parents=True, exist_ok=True)
        for sha, data in packed.pieces.items():
            write_atomic(self._store / sha, data)
        artifacts = set(ledger.artifacts)
        if record.artifact_at is None:
            record.artifact_at = time.time()  # what waits for an artifact waits from the first checkpoint
        since = time.time() - record.artifact_at
        as_artifact = self._cache is None or final or artifact_due(packed.head, name, artifacts, self._on_hand, since)
        head, compacted = packed.head, list[PieceRef]()
        if as_artifact:
            head, compacted = self._take_over(head, name, artifacts, limits)
        head = resend(head, name, self._resent(final), self._own_segment)
        head_bytes = head.to_bytes(source.key)
        packed.ledger.head = list(head.pieces)
        record.plan_sha256 = hashlib.sha256(packed.plan_bytes).hexdigest()
        cache_places = {ref.cache_place for ref in head.pieces}
        record.uncached = [other for other in record.uncached if other in cache_places and self._own_segment(other)]
        # The cache copy first: once it is in, the checkpoint is safe, whatever the artifact takes.
        cache_segment = write_segment(head_bytes, self._pieces(cache_copy(head, name)))
        if not self._keep_cache_copy(name, sequence, cache_segment) and not as_artifact:
            # The only copy failed: an artifact carries this checkpoint instead, whole, as every artifact does.
            as_artifact = True
            head, compacted = self._take_over(head, name, artifacts, limits)
            head_bytes = head.to_bytes(source.key)
            packed.ledger.head = list(head.pieces)
        if as_artifact:
            self._artifacts.upload(name, write_segment(head_bytes, self._pieces(artifact_copy(head, name))))
            # The artifact head before this one (and its own segment) stays a restorable fallback until the next.
            previous = [*ledger.artifact_head, *([record.artifact] if record.artifact else [])]
            record.artifact, record.artifact_at, record.artifact_plan_sha256 = name, time.time(), record.plan_sha256
            pruned = self._prune(deletable(self._own_artifacts(), head, name, previous))
            packed.ledger.artifacts = sorted((artifacts | {name}) - set(pruned))
            packed.ledger.artifact_head = head.segments()
        packed.ledger.save(self._ledger_path)
        record.save(self._record_path)
        named = {ref.sha256 for ref in head.pieces}
        for path in self._store.iterdir():  # superseded pieces, and those of failed uploads, are not sent again
            if path.name not in named:
                path.unlink(missing_ok=True)
        return bool(compacted)

    def _pack(self, ledger: Ledger, sequence: int, segment: str) -> Packed:
        """What changed, packed; packed again when git failed because the plan changed while it was read (a task
        finished and its worktree was handed on, as happens every few dozen tasks), at most `PACK_TRIES` times."""
        for tries_left in reversed(range(PACK_TRIES)):
            before = self._source.plan_path.read_bytes()
            try:
                return self._source.pack(ledger, sequence, segment)
            except WorkspaceChangesError:
                if not tries_left or self._source.plan_path.read_bytes() == before:
                    raise
        raise AssertionError("PACK_TRIES is at least 1")

    def _take_over(
        self, head: Head, name: str, artifacts: set[str], limits: tuple[int, int]
    ) -> tuple[Head, list[PieceRef]]:
        """The artifact `name`'s head: holding every piece that only cache copies held, then compacted; and the
        refs compaction moved."""
        waiting = {ref.segment for ref in waiting_refs(head, name, artifacts, self._on_hand)} - {name}
        head, _ = take_over(head, name, waiting, self._record.uncached)
        chosen = to_compact(head, name, lambda segment: segment in artifacts and self._own_segment(segment), limits)
        return take_over(head, name, chosen, self._record.uncached)

    def _on_hand(self, ref: PieceRef) -> bool:
        """Whether the piece's bytes are in the piece store: this attempt's pieces, and a restore's."""
        return (self._store / ref.sha256).is_file()

    def _pieces(self, shas: set[str]) -> dict[str, bytes]:
        """The bytes of pieces this attempt packed, from the piece store."""
        return {sha: (self._store / sha).read_bytes() for sha in sorted(shas)}

    def _resent(self, final: bool) -> list[str]:
        """The segments whose live pieces this upload carries again, because they have no cache copy. Once two
        copies in a row have failed the cache looks down, and moving them at every upload would send them in
        every upload: they wait for a copy that succeeds, or for the run's last upload."""
        record = self._record
        return record.uncached if final or record.failed_copies <= 1 else []

    def _keep_cache_copy(self, name: str, sequence: int, segment: bytes) -> bool:
        """The segment's cache copy, under the key its name gives; whether it was kept. A failure is warned and
        recorded, so that its pieces go into a later copy (`_resent`)."""
        if self._cache is None:
            return False
        record, source = self._record, self._source
        key = cache_key(source.state_name, source.context.run_id, source.context.run_attempt, sequence)
        record.cached = False
        try:
            record.cached = self._cache.save(key, segment)
        except ServiceError as exc:
            self._warn(f"could not keep a cache copy of checkpoint {name}: {exc}")
        if not record.cached:
            record.uncached.append(name)
        record.failed_copies = 0 if record.cached else record.failed_copies + 1
        record.save(self._record_path)
        return record.cached

    def _own_segment(self, name: str) -> bool:
        """Whether `name` is a segment this attempt wrote, whose pieces are on this machine."""
        parsed = parse_artifact_name(name, self._source.state_name)
        return parsed is not None and parsed[0] == self._source.context.run_attempt

    def _own_artifacts(self) -> list[str]:
        return [ref.name for ref in self._artifacts.list(name_prefix="planeteer-") if self._own_segment(ref.name)]

    def _prune(self, names: list[str]) -> list[str]:
        """Delete the artifacts `names`; the ones deleted."""
        deleted = []
        for name in names:
            try:
                self._artifacts.delete(name)
                deleted.append(name)
            except ServiceError as exc:
                self._warn(f"could not delete superseded checkpoint {name}: {exc}")
        return deleted


def build_on(restored: Restored, copilot_home: Path, record_path: Path) -> None:
    """Let this attempt's uploads build on a head just put back: its pieces travelled already (the ledger says
    so), and those no artifact holds go into the piece store, for this attempt's artifacts to take over."""
    if restored.head is None or restored.checkpoint is None:
        return
    ledger = Ledger.after_restore(restored.head, restored.checkpoint, copilot_home, restored.artifacts)
    store = record_path.with_name(PIECE_STORE)
    store.mkdir(parents=True, exist_ok=True)
    for ref in restored.head.pieces:
        if ref.segment not in restored.artifacts:
            write_atomic(store / ref.sha256, restored.pieces[ref.sha256])
    ledger.save(record_path.with_name(LEDGER))


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
