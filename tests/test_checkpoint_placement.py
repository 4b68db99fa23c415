"""Every checkpoint goes to the cache; artifacts are taken in steps that grow with the state. Each artifact's
head restores from artifacts alone (what `planeteer pull` reads over REST), each checkpoint's head from cache
copies alone (what "Re-run all jobs" has), and no piece travels twice to either store."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.github_services import ARTIFACT_BLOBS, CACHE_BLOBS, FakeGitHubServices
from test_checkpoint_cache_copies import travels
from test_checkpoint_pieces import KEY, PLAN_ID, RUN, STATE, TASKS, Job, Snapshot, alive, checkpoint_of, content

from planeteer_action.action.uploader import UploadRecord
from planeteer_action.checkpoints import placement
from planeteer_action.checkpoints.fetch import RunSegments
from planeteer_action.checkpoints.manifest import CheckpointMeta
from planeteer_action.checkpoints.naming import artifact_name
from planeteer_action.checkpoints.placement import ARTIFACT_INTERVAL, MIN_ARTIFACT_STEP, artifact_due
from planeteer_action.checkpoints.segments import Head, PieceRef
from planeteer_action.github.run_artifacts import RunArtifacts

MIB = 1024 * 1024
NEW = artifact_name(STATE, 2, 9)
META = CheckpointMeta(PLAN_ID, str(RUN), 2, 9, None, "2026-11-29T19:00:00.000Z", "plan.json")


def on_hand(ref: PieceRef) -> bool:
    """This attempt's pieces are on this machine; an earlier attempt's artifact's are not."""
    return "-attempt002-" in ref.segment


def head_of(*pieces: tuple[int, str]) -> Head:
    """A head of pieces of the given sizes, in the given segments."""
    return Head(META, tuple(PieceRef(f"{n:064x}", size, segment, "bundle") for n, (size, segment) in enumerate(pieces)))


@pytest.mark.parametrize(
    ("pieces", "artifacts", "since", "due"),
    [
        ([(MIN_ARTIFACT_STEP - 1, NEW)], set(), 0.0, False),  # too little to be worth an artifact yet
        ([(MIN_ARTIFACT_STEP, NEW)], set(), 0.0, True),
        ([(10 * MIB, "A"), (4 * MIB, NEW)], {"A"}, 0.0, False),  # less than half of what the artifacts hold
        ([(10 * MIB, "A"), (3 * MIB, "B"), (2 * MIB, NEW)], {"A"}, 0.0, True),  # half of it, cache-only B too
        ([(10 * MIB, "A"), (1, NEW)], {"A"}, ARTIFACT_INTERVAL, True),  # something waited long enough
        ([(10 * MIB, "A")], {"A"}, ARTIFACT_INTERVAL, False),  # nothing waits
        ([(10 * MIB, "E"), (3 * MIB, NEW)], set(), 0.0, False),  # an earlier attempt's: held, never waiting
    ],
    ids=["little", "first-step", "below-half", "half", "interval", "nothing-waits", "earlier-attempt"],
)
def test_an_artifact_is_due_when_what_waits_for_one_grows_to_half_of_what_artifacts_hold(
    pieces: list[tuple[int, str]], artifacts: set[str], since: float, due: bool
) -> None:
    names = {"A": artifact_name(STATE, 2, 1), "B": artifact_name(STATE, 2, 2), "E": artifact_name(STATE, 1, 7)}
    head = head_of(*[(size, names.get(segment, segment)) for size, segment in pieces])
    assert artifact_due(head, NEW, {names[a] for a in artifacts}, on_hand, since) is due


def checkpoint(job: Job, *, final: bool = False) -> tuple[str, UploadRecord]:
    """One checkpoint: its segment's name, and the record it leaves."""
    assert job.uploader is not None
    job.uploader.request(final=final)
    assert job.uploader.flush(30)
    assert job.warnings == []
    record = UploadRecord.load(job.state / "uploads.json")
    return artifact_name(STATE, job.attempt, record.sequence), record


def test_artifacts_come_in_growing_steps_each_whole_in_artifacts_and_every_checkpoint_whole_in_the_cache(
    fake: FakeGitHubServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(placement, "MIN_ARTIFACT_STEP", 20_000)  # a short run's state is a few hundred KB
    job = Job(fake, tmp_path, 1, KEY)
    job.start(restore=False)
    saved: dict[str, Snapshot] = {}
    artifacts: list[str] = []
    try:
        for number in range(3 * TASKS):
            job.step(number)
            name, record = checkpoint(job)
            saved[name] = job.snapshot()
            assert record.cached and record.plan_sha256 is not None
            if record.artifact == name:
                artifacts.append(name)
        last, record = checkpoint(job, final=True)  # the run's last always goes out as an artifact
        saved[last] = job.snapshot()
        assert record.artifact == last and job.uploader is not None and job.uploader.upload_if_changed() is False
    finally:
        job.close()
    artifacts.append(last)

    assert 3 <= len(artifacts) <= 3 * TASKS // 3, artifacts  # in steps: more than the last, far fewer than all
    assert alive(fake) == artifacts
    rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
    for name in artifacts:  # from artifacts alone, as `planeteer pull` outside a workflow reads them
        head, restored = checkpoint_of(RunSegments(STATE, RUN, rest, None, pytest.fail), name, KEY)
        assert content(restored) == saved[name]
        assert set(head.segments()) <= set(artifacts)
    for name, snapshot in saved.items():  # from cache copies alone, as after "Re-run all jobs"
        _, restored = checkpoint_of(RunSegments(STATE, RUN, None, job.cache, pytest.fail), name, KEY)
        assert content(restored) == snapshot
    # Each piece went once into an artifact and once into a cache copy.
    assert max(travels(fake, ARTIFACT_BLOBS).values()) == 1
    assert max(travels(fake, CACHE_BLOBS).values()) == 1


def test_a_checkpoint_whose_only_copy_failed_goes_out_as_an_artifact(fake: FakeGitHubServices, tmp_path: Path) -> None:
    job = Job(fake, tmp_path, 1, KEY)
    job.start(restore=False)
    try:
        job.step(0)
        _, record = checkpoint(job)
        assert record.cached and record.artifact is None  # a little state: the cache copy alone holds it
        job.step(1)
        fake.fail_next(CACHE_BLOBS, 403, times=1)
        assert job.uploader is not None
        job.uploader.request()
        assert job.uploader.flush(30)
        record = UploadRecord.load(job.state / "uploads.json")
        second = artifact_name(STATE, 1, record.sequence)
        assert not record.cached and record.artifact == second and alive(fake) == [second]
        assert len(job.warnings) == 1 and job.warnings[0].startswith(
            f"could not keep a cache copy of checkpoint {second}"
        )
        rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
        # Whole from artifacts alone: it took over what only the first checkpoint's cache copy held.
        _, restored = checkpoint_of(RunSegments(STATE, RUN, rest, None, pytest.fail), second, KEY)
        assert content(restored) == job.snapshot()
    finally:
        job.close()


def test_without_a_cache_to_write_every_checkpoint_is_an_artifact(fake: FakeGitHubServices, tmp_path: Path) -> None:
    job = Job(fake, tmp_path, 1, KEY)
    assert job.cache is not None
    job.cache.can_save = False  # a cache this job may only read (ACTIONS_CACHE_MODE read-only)
    job.start(restore=False)
    try:
        for number in range(3):
            job.step(number)
            name, record = checkpoint(job)
            assert record.artifact == name and not record.cached
    finally:
        job.close()
    assert fake.cache_entries == []


def test_a_lost_runner_resumes_from_the_cache_head_newer_than_any_artifact_and_builds_on_its_pieces(
    fake: FakeGitHubServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(placement, "MIN_ARTIFACT_STEP", 20_000)
    first = Job(fake, tmp_path, 1, KEY)
    first.start(restore=False)
    try:
        first.step(0)
        newest, record = checkpoint(first)
        number = 1
        while number < 12 or record.artifact == newest:  # lost once the cache holds more than the artifacts
            first.step(number)
            newest, record = checkpoint(first)
            number += 1
        assert record.artifact is not None  # and no final checkpoint: the runner is gone
    finally:
        first.close()

    second = Job(fake, tmp_path, 2, KEY)  # "Re-run failed jobs"
    second.start(restore=True)  # asserts that it restored; from the newest head, the cache's:
    assert content(checkpoint_of(RunSegments(STATE, RUN, None, second.cache, pytest.fail), newest, KEY)[1]) == (
        second.snapshot()
    )
    try:
        for later in range(number, 3 * TASKS):
            second.step(later)
            checkpoint(second)
        last, _ = checkpoint(second, final=True)
    finally:
        second.close()
    assert "-attempt002-" in last and alive(fake)[-1] == last
    cache_only = RunSegments(STATE, RUN, None, second.cache, pytest.fail)
    head, restored = checkpoint_of(cache_only, last, KEY)
    assert content(restored) == second.snapshot()
    assert {segment.split("-attempt")[1][:3] for segment in head.segments()} == {"001", "002"}
    # And whole in artifacts alone, as `planeteer pull` reads it outside a workflow: attempt 2's last artifact
    # took over what attempt 1 had only in cache copies (the restore left those pieces in the piece store).
    rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
    head, restored = checkpoint_of(RunSegments(STATE, RUN, rest, None, pytest.fail), last, KEY)
    assert content(restored) == second.snapshot()
    assert set(head.segments()) <= set(alive(fake))
