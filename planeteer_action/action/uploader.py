"""Checkpoints in a workflow: written after every task state change and uploaded in the background as
artifacts, with a copy in the Actions cache that survives "Re-run all jobs".

At most one upload is in flight and one waits; a newer request replaces the waiting one (the upload reads
the plan when it starts, so the newest state wins). How many go out, and how often, is rationed by
`UploadBudget`, so that no plan exceeds GitHub's 500 artifacts per job.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from planeteer_action.action.context import ActionContext
from planeteer_action.action.upload_budget import DEFAULT_BUDGET, UploadBudget
from planeteer_action.checkpoints.archive import build_checkpoint
from planeteer_action.checkpoints.branches import capture_branches
from planeteer_action.checkpoints.manifest import CheckpointMeta
from planeteer_action.checkpoints.naming import artifact_name, cache_key, parse_artifact_name
from planeteer_action.checkpoints.workspace import capture_changes
from planeteer_action.engine.events import Event, RunFinished, TaskDone, TaskFailed, TaskInterrupted, TaskStarted
from planeteer_action.errors import PlaneteerError
from planeteer_action.github._twirp import ServiceError
from planeteer_action.github.artifacts import ArtifactService
from planeteer_action.github.cache import ActionsCache
from planeteer_action.plan.lock import lock_path
from planeteer_action.plan.model import Plan, utc_now
from planeteer_action.plan.store import markdown_path, write_atomic

Warn = Callable[[str], None]
# Older checkpoints of an attempt are deleted once a newer one is finalized; a few stay as a margin.
KEEP_PER_ATTEMPT = 2
# Cache entries cannot be deleted with the runtime token and count against the repository's cache quota
# (evicting its other caches), so the cache copy is not one per change: the first checkpoint, then at most
# one per interval, and always the last one of a run (it is what "Re-run all jobs" comes back to).
CACHE_INTERVAL_SECONDS = 120.0


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
        """The checkpoint of what is on disk now, and the sha256 of the plan it holds (read once, so the
        sessions listed are those of the very plan saved)."""
        plan_bytes = self.plan_path.read_bytes()
        plan = Plan.model_validate(json.loads(plan_bytes))
        session_ids = {
            attempt.session_id
            for task in plan.tasks
            for attempt in task.attempts
            if attempt.session_id and not attempt.session_deleted
        }
        changes, branches = b"", None
        if self.base_commit and plan.execution is not None and plan.execution.isolation == "worktree":
            # The work is commits on the plan's branches; the checkout itself holds none of it.
            branches = capture_branches(self.working_directory, plan, self.base_commit)
        elif self.base_commit:
            exclude = [self.plan_path, markdown_path(self.plan_path), lock_path(self.plan_path), self.copilot_home]
            changes = capture_changes(self.working_directory, self.base_commit, exclude)
        meta = CheckpointMeta(
            plan_id=plan.id,
            run_id=str(self.context.run_id),
            attempt=self.context.run_attempt,
            sequence=sequence,
            base_commit=self.base_commit,
            created_at=utc_now(),
            plan_path=_relative(self.plan_path, self.working_directory),
        )
        data = build_checkpoint(
            meta, plan_bytes, self.copilot_home, sorted(session_ids), changes, key=self.key, branches=branches
        )
        return data, hashlib.sha256(plan_bytes).hexdigest()


@dataclass
class UploadRecord:
    """Kept in the state folder so that the final `always()` step knows what already went out."""

    sequence: int = 0
    artifact: str | None = None
    plan_sha256: str | None = None
    cached: bool = False  # whether `artifact` also has a cache copy
    cached_at: float | None = None  # when the newest cache copy was saved (time.time())
    attempt: int = 0  # the run attempt `uploads` counts for
    uploads: int = 0  # artifacts this attempt created (failed tries too: they count against the limit)
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
            return current == record.plan_sha256 and (record.cached or self._cache is None)

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
        record = self._record
        # A failed create still reserves its name, so every try takes a new sequence number.
        sequence = record.sequence + 1
        attempt = self._source.context.run_attempt
        record.uploads = (record.uploads if record.attempt == attempt else 0) + 1
        record.sequence, record.attempt, record.uploaded_at = sequence, attempt, time.time()
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


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
