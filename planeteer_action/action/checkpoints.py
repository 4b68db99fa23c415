"""Checkpoints in a workflow: written after every task state change, uploaded in the background as
artifacts (with a copy in the Actions cache), and found, verified and restored on a re-run.

"Re-run failed jobs" keeps earlier attempts' artifacts; "Re-run all jobs" deletes them, which is why the
newest checkpoint also goes into the cache, keyed by run. A restore takes whichever copy is newer.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..actions_cache import ActionsCache
from ..artifact_service import ArtifactService
from ..checkpoint import (
    CheckpointError,
    CheckpointMeta,
    artifact_name,
    build_checkpoint,
    open_checkpoint,
    parse_artifact_name,
    safe_state_name,
)
from ..errors import PlaneteerError
from ..events import Event, RunFinished, TaskDone, TaskFailed, TaskInterrupted, TaskStarted
from ..models import utc_now
from ..run_artifacts import RunArtifacts
from ..store import markdown_path, write_atomic
from ..twirp import ServiceError
from ..workspace_changes import apply_changes, capture_changes
from .context import ActionContext

Warn = Callable[[str], None]
# Older checkpoints of an attempt are deleted once a newer one is finalized; a few stay as a margin.
KEEP_PER_ATTEMPT = 2
# Cache entries cannot be deleted with the runtime token and count against the repository's cache quota
# (evicting its other caches), so the cache copy is not one per change: the first checkpoint, then at most
# one per interval, and always the last one of a run (it is what "Re-run all jobs" comes back to).
CACHE_INTERVAL_SECONDS = 120.0
_CACHE_KEY = re.compile(r"-attempt([0-9]+)-seq([0-9]+)$")


def default_state_name(plan_id: str) -> str:
    return safe_state_name(plan_id)


def cache_key(state_name: str, run_id: int, attempt: int, sequence: int) -> str:
    return f"planeteer-run{run_id}-{artifact_name(state_name, attempt, sequence)}"


def cache_prefix(state_name: str, run_id: int) -> str:
    return f"planeteer-run{run_id}-planeteer-{safe_state_name(state_name)}-attempt"


@dataclass(frozen=True)
class CheckpointSource:
    """Where this attempt's checkpoints are built from."""

    context: ActionContext
    state_name: str
    plan_path: Path
    working_directory: Path
    copilot_home: Path
    base_commit: str | None
    key: str | None

    def build(self, sequence: int) -> tuple[bytes, str]:
        """The checkpoint of what is on disk now, and the sha256 of the plan it holds."""
        plan_bytes = self.plan_path.read_bytes()
        plan = json.loads(plan_bytes)
        session_ids = {
            attempt["sessionId"]
            for task in plan.get("tasks", [])
            for attempt in task.get("attempts", [])
            if isinstance(attempt, dict) and attempt.get("sessionId") and not attempt.get("sessionDeleted")
        }
        changes = b""
        if self.base_commit:
            lock = self.plan_path.with_name(self.plan_path.name + ".lock")
            exclude = [self.plan_path, markdown_path(self.plan_path), lock, self.copilot_home]
            changes = capture_changes(self.working_directory, self.base_commit, exclude)
        meta = CheckpointMeta(
            plan_id=str(plan["id"]),
            run_id=str(self.context.run_id),
            attempt=self.context.run_attempt,
            sequence=sequence,
            base_commit=self.base_commit,
            created_at=utc_now(),
            plan_path=_relative(self.plan_path, self.working_directory),
        )
        data = build_checkpoint(meta, plan_bytes, self.copilot_home, sorted(session_ids), changes, key=self.key)
        return data, hashlib.sha256(plan_bytes).hexdigest()


@dataclass
class UploadRecord:
    """Kept in the state folder so that the final `always()` step knows what already went out."""

    sequence: int = 0
    artifact: str | None = None
    plan_sha256: str | None = None
    cached: bool = False  # whether `artifact` also has a cache copy
    cached_at: float | None = None  # when the newest cache copy was saved (time.time())

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
    """

    def __init__(
        self,
        source: CheckpointSource,
        artifacts: ArtifactService,
        cache: ActionsCache | None,
        record_path: Path,
        warn: Warn,
    ) -> None:
        self._source = source
        self._artifacts = artifacts
        self._cache = cache
        self._record_path = record_path
        self._record = UploadRecord.load(record_path)
        self._warn = warn
        self._wanted = 0
        self._served = 0
        self._final = False  # the waiting request is a run's last: it always gets a cache copy
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
            return current == record.plan_sha256 and (record.cached or self._cache is None)

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._served >= self._wanted and not self._closed:
                    self._cond.wait()
                if self._closed and self._served >= self._wanted:
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
        record = self._record
        # A failed create still reserves its name, so every try takes a new sequence number.
        sequence = record.sequence + 1
        record.sequence = sequence
        record.save(self._record_path)
        data, plan_sha = self._source.build(sequence)
        source = self._source
        name = artifact_name(source.state_name, source.context.run_attempt, sequence)
        self._artifacts.upload(name, data)
        record.artifact, record.plan_sha256, record.cached = name, plan_sha, False
        record.save(self._record_path)
        self._prune(sequence)
        due = record.cached_at is None or time.time() - record.cached_at >= CACHE_INTERVAL_SECONDS
        if self._cache is not None and (final or due):
            key = cache_key(source.state_name, source.context.run_id, source.context.run_attempt, sequence)
            try:
                record.cached = self._cache.save(key, data)
            except ServiceError as exc:
                self._warn(f"could not keep a cache copy of checkpoint {name}: {exc}")
            else:
                record.cached_at = time.time()
                record.save(self._record_path)

    def _prune(self, newest_sequence: int) -> None:
        attempt = self._source.context.run_attempt
        older = []
        for ref in self._artifacts.list(name_prefix="planeteer-"):
            parsed = parse_artifact_name(ref.name, self._source.state_name)
            if parsed and parsed[0] == attempt and parsed[1] < newest_sequence:
                older.append((parsed[1], ref.name))
        for _, name in sorted(older)[: max(0, len(older) - (KEEP_PER_ATTEMPT - 1))]:
            try:
                self._artifacts.delete(name)
            except ServiceError as exc:
                self._warn(f"could not delete superseded checkpoint {name}: {exc}")


@dataclass(frozen=True)
class Restored:
    name: str
    origin: str  # "artifact" or "cache"
    run_id: int
    attempt: int
    sequence: int
    sessions: list[str]
    changed_paths: list[str]
    base_commit: str | None = None

    def describe(self) -> str:
        return (
            f"restored checkpoint {self.name} from the {self.origin} (run {self.run_id}, attempt {self.attempt}, "
            f"save {self.sequence}): {len(self.sessions)} session(s), {len(self.changed_paths)} changed file(s)"
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RestoreTarget:
    """Where a restored checkpoint goes: the plan file, the checkout its changes apply to, the Copilot home."""

    plan_path: Path
    working_directory: Path
    copilot_home: Path
    key: str | None
    apply_work: bool = True


def restore_checkpoint(
    state_name: str,
    run_id: int,
    expected_plan_id: str | None,
    rest: RunArtifacts | None,
    cache: ActionsCache | None,
    target: RestoreTarget,
    warn: Warn,
    *,
    before_attempt: int | None = None,
) -> Restored | None:
    """Find the newest checkpoint of a plan in a run, verify it and put everything back.

    A checkpoint that cannot be found or trusted is a warning: the run falls back to the repository's plan.
    Work that cannot be put back (another commit, conflicting files) raises: skipping tasks whose work is
    missing would be worse than stopping. `before_attempt` skips the current attempt's own checkpoints.
    """
    candidates: list[tuple[tuple[int, int], str, Callable[[], bytes]]] = []
    if rest is not None:
        try:
            for artifact in rest.list(run_id, name_prefix="planeteer-"):
                order = parse_artifact_name(artifact.name, state_name)
                if order is None or artifact.expired:
                    continue
                if before_attempt is not None and order[0] >= before_attempt:
                    continue
                candidates.append((order, "artifact", functools.partial(rest.download, artifact.id)))
        except ServiceError as exc:
            warn(f"could not list the checkpoints of run {run_id}: {exc}")
    if cache is not None:
        try:
            prefix = cache_prefix(state_name, run_id)
            found = cache.restore(prefix + "-latest", [prefix])
        except ServiceError as exc:
            warn(f"could not read the cached checkpoint of run {run_id}: {exc}")
            found = None
        if found is not None:
            key, data = found
            match = _CACHE_KEY.search(key)
            if match:
                order = (int(match.group(1)), int(match.group(2)))
                if before_attempt is None or order[0] < before_attempt:
                    candidates.append((order, "cache", functools.partial(bytes, data)))
    if not candidates:
        warn(f"no checkpoint of this plan found in run {run_id}: starting from the plan file in the repository")
        return None
    for order, origin, fetch in sorted(candidates, key=lambda c: (c[0], c[1] == "artifact"), reverse=True):
        name = artifact_name(state_name, *order)
        try:
            checkpoint = open_checkpoint(fetch(), key=target.key, expected_plan_id=expected_plan_id)
        except (CheckpointError, ServiceError) as exc:
            warn(f"checkpoint {name} from the {origin} refused: {exc}")
            continue
        changed: list[str] = []
        if checkpoint.changes and target.apply_work:
            if checkpoint.meta.base_commit is None:
                warn(f"checkpoint {name} carries changes without a base commit: they were not applied")
            else:
                changed = apply_changes(target.working_directory, checkpoint.meta.base_commit, checkpoint.changes)
        sessions = checkpoint.restore_sessions(target.copilot_home)
        target.plan_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target.plan_path, checkpoint.plan_bytes)
        return Restored(name, origin, run_id, order[0], order[1], sessions, changed, checkpoint.meta.base_commit)
    warn("no usable checkpoint: starting from the plan file in the repository")
    return None


def states_in(names: list[str]) -> set[str]:
    """The state names of the checkpoint artifacts among `names` (for `pull` without a plan id)."""
    return {m.group(1) for m in (re.match(r"^planeteer-(.+)-attempt[0-9]+-seq[0-9]+$", n) for n in names) if m}


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
