"""A segment whose cache copy failed: later heads must not lean on it, or "Re-run all jobs" (which has only the
cache copies) finds no whole checkpoint. Its live pieces travel again in the next segment, and the run's last
upload carries whatever is still missing; an outage of the cache does not make every upload carry them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fakes.github_services import ARTIFACT_BLOBS, CACHE_BLOBS, FakeGitHubServices
from test_checkpoint_pieces import KEY, PLAN_ID, RUN, STATE, Job, alive, checkpoint_of, content

from planeteer_action.action.uploader import UploadRecord
from planeteer_action.checkpoints.fetch import RunSegments
from planeteer_action.checkpoints.manifest import CheckpointMeta
from planeteer_action.checkpoints.naming import artifact_name
from planeteer_action.checkpoints.placement import resend
from planeteer_action.checkpoints.restore import RestoreTarget, restore_checkpoint
from planeteer_action.checkpoints.segments import Head, PieceRef, read_segment
from planeteer_action.checkpoints.zip_io import DEFAULT_LIMITS
from planeteer_action.github.cache import ActionsCache
from planeteer_action.github.run_artifacts import RunArtifacts

pytestmark = pytest.mark.usefixtures("every_checkpoint_an_artifact")


def upload(job: Job) -> UploadRecord:
    """One checkpoint upload, whatever its cache copy did: the record it leaves."""
    assert job.uploader is not None
    job.uploader.request()
    assert job.uploader.flush(30)
    return UploadRecord.load(job.state / "uploads.json")


def fail_cache_copies(fake: FakeGitHubServices, times: int) -> None:
    """The next `times` cache copies fail after their key was reserved (a refused blob upload), as a real
    outage of the cache's storage would: the key then stays taken, so the copy cannot be sent again under it."""
    fake.fail_next(CACHE_BLOBS, 403, times=times)


def restorable_from_the_cache_alone(job: Job, name: str) -> bool:
    """Whether the head in segment `name` is whole from cache copies alone (what "Re-run all jobs" has)."""
    segments = RunSegments(STATE, RUN, None, job.cache, lambda warning: pytest.fail(warning))
    try:
        _, checkpoint = checkpoint_of(segments, name, KEY)
    except Exception:
        return False
    return content(checkpoint) == job.snapshot()


def travels(fake: FakeGitHubServices, store: str) -> Counter[str]:
    """How many of the segments uploaded to a store's blobs (`ARTIFACT_BLOBS`, `CACHE_BLOBS`) carried each piece."""
    counts: Counter[str] = Counter()
    for request in fake.requests:
        if request.method == "PUT" and request.path.startswith(store) and 200 <= request.status < 300:
            counts.update(read_segment(request.body, DEFAULT_LIMITS)[1].keys())
    return counts


def test_the_segment_after_a_failed_cache_copy_carries_its_live_pieces_so_the_cache_alone_restores_it(
    fake: FakeGitHubServices, tmp_path: Path
) -> None:
    job = Job(fake, tmp_path, 1, KEY)
    job.start(restore=False)
    try:
        for number in range(4):
            job.step(number)
            job.upload()
        job.step(4)  # task 1 writes a file no later step changes: its piece stays in every later head
        fail_cache_copies(fake, 1)
        failed = upload(job)
        assert failed.artifact is not None and not failed.cached
        assert len(job.warnings) == 1 and job.warnings[0].startswith(
            f"could not keep a cache copy of checkpoint {failed.artifact}: "
        )
        assert job.uploader is not None and not job.uploader._up_to_date()
        for number in range(5, 9):
            job.step(number)
            record = upload(job)
            assert record.artifact is not None and record.cached
            assert restorable_from_the_cache_alone(job, record.artifact), record.artifact
            assert job.uploader._up_to_date()
        assert job.uploader.upload_if_changed() is False  # nothing left for the final step to send
    finally:
        job.close()
    assert len(job.warnings) == 1, job.warnings


def test_the_runs_last_upload_carries_what_a_cache_outage_left_without_a_copy_and_no_piece_travels_each_time(
    fake: FakeGitHubServices, tmp_path: Path
) -> None:
    job = Job(fake, tmp_path, 1, KEY)
    job.start(restore=False)
    try:
        for number in range(3):
            job.step(number)
            job.upload()
        fail_cache_copies(fake, 4)
        for number in range(3, 8):  # four copies fail in a row, then the cache is back
            job.step(number)
            record = upload(job)
        assert record.cached and record.artifact is not None  # but it names pieces with no copy yet:
        assert not restorable_from_the_cache_alone(job, record.artifact)
        assert job.uploader is not None and job.uploader.upload_if_changed() is True
    finally:
        job.close()
    record = UploadRecord.load(job.state / "uploads.json")
    assert record.cached and record.artifact is not None
    assert restorable_from_the_cache_alone(job, record.artifact)
    assert record.uncached == []
    # A piece first sent in the outage went into one artifact (its checkpoint's, as its only copy) and into the
    # cache once the cache was back; not into every copy while the cache was down.
    assert max(travels(fake, ARTIFACT_BLOBS).values()) == 1, travels(fake, ARTIFACT_BLOBS).most_common(3)
    assert max(travels(fake, CACHE_BLOBS).values()) == 1, travels(fake, CACHE_BLOBS).most_common(3)

    third = fake.rerun_all_jobs(RUN)  # the artifacts are gone; the cache copies alone rebuild the newest head
    assert alive(fake) == []
    cache = ActionsCache.from_env(fake.runtime_env(RUN, third))
    plan, warnings = tmp_path / "rerun" / "plan.json", list[str]()
    rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
    target = RestoreTarget(plan, plan.parent, plan.parent / "home", KEY)
    restored = restore_checkpoint(STATE, RUN, PLAN_ID, rest, cache, target, warnings.append, before_attempt=third)
    assert restored is not None and restored.origin == "cache" and warnings == [], warnings
    assert restored.name == record.artifact and plan.read_bytes() == job.snapshot()[0]


def test_a_piece_whose_cache_copy_failed_goes_into_the_next_cache_copy_and_stays_in_its_artifact() -> None:
    meta = CheckpointMeta(PLAN_ID, str(RUN), 2, 5, None, "2026-11-29T17:00:00.000Z", "plan.json")
    earlier, own = artifact_name(STATE, 1, 9), [artifact_name(STATE, 2, n) for n in range(1, 5)]
    new = artifact_name(STATE, 2, 5)
    refs = [PieceRef(f"{n:064x}", 10 + n, name, "bundle") for n, name in enumerate([earlier, *own])]
    head = Head(meta, tuple(refs))

    def movable(name: str) -> bool:
        return "-attempt002-" in name

    placed = resend(head, new, [own[2], earlier], movable)

    resent = [ref for ref, before in zip(placed.pieces, refs, strict=True) if ref != before]
    # Only this attempt's: an earlier attempt's pieces are not on this machine.
    assert resent == [PieceRef(refs[3].sha256, refs[3].size, own[2], "bundle", None, new)]
    assert placed.pieces[3].cache_place == new and placed.segments() == head.segments()
    assert [ref for n, ref in enumerate(placed.pieces) if n != 3] == [ref for n, ref in enumerate(refs) if n != 3]
    assert resend(head, new, [], movable) == head
