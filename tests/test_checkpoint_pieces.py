"""Checkpoints as a log of pieces: every head a re-run could pick restores on its own, pruning never takes a
piece a live head names, a re-run's heads build on the pieces of the attempt before it, and the cache copies
alone rebuild everything after "Re-run all jobs". Jobs are simulated with the real uploader against the
local GitHub services; sessions grow and finish as an agent's would."""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path

import pytest
from fakes.github_services import CACHE_BLOBS, FakeGitHubServices

from planeteer_action.action import uploader as uploader_module
from planeteer_action.action.context import ActionContext
from planeteer_action.action.uploader import LEDGER, CheckpointSource, CheckpointUploader, UploadRecord, build_on
from planeteer_action.checkpoints.archive import Checkpoint, assemble
from planeteer_action.checkpoints.compaction import FINAL_LIMITS, deletable, take_over, to_compact
from planeteer_action.checkpoints.errors import CheckpointInvalid
from planeteer_action.checkpoints.fetch import RunSegments, open_head, open_pieces
from planeteer_action.checkpoints.manifest import CheckpointMeta
from planeteer_action.checkpoints.naming import artifact_name
from planeteer_action.checkpoints.packer import Ledger
from planeteer_action.checkpoints.pieces import build_piece, open_piece, piece_id
from planeteer_action.checkpoints.restore import RestoreTarget, restore_checkpoint
from planeteer_action.checkpoints.segments import Head, PieceRef, read_segment, write_segment
from planeteer_action.checkpoints.zip_io import DEFAULT_LIMITS
from planeteer_action.github.artifacts import ArtifactService
from planeteer_action.github.cache import ActionsCache
from planeteer_action.github.run_artifacts import RunArtifacts
from planeteer_action.plan.session_ids import session_id_for

pytestmark = pytest.mark.usefixtures("every_checkpoint_an_artifact")
PLAN_ID = "plan-log"
STATE = "plan-log"
RUN = 7070
KEY = "piece by piece"
TASKS = 12

Snapshot = tuple[bytes, dict[str, dict[str, bytes]]]


class Job:
    """One attempt of the job on a machine of its own: its plan, Copilot home and uploader."""

    def __init__(self, fake: FakeGitHubServices, root: Path, attempt: int, key: str | None) -> None:
        self.fake, self.attempt, self.key = fake, attempt, key
        self.work = root / f"attempt{attempt}"
        self.home, self.state = self.work / "home", self.work / "state"
        self.plan_path = self.work / "plan.json"
        self.state.mkdir(parents=True)
        self.warnings: list[str] = []
        env = fake.runtime_env(RUN, attempt)
        self.artifacts, self.cache = ArtifactService.from_env(env), ActionsCache.from_env(env)
        assert self.artifacts is not None and self.cache is not None
        self.rng = random.Random(attempt)
        self.uploader: CheckpointUploader | None = None

    def start(self, *, restore: bool) -> None:
        """Restore the run's newest checkpoint (as the action's run step does), or begin with the plan."""
        if restore:
            target = RestoreTarget(self.plan_path, self.work, self.home, self.key)
            rest = RunArtifacts(self.fake.rest_token, self.fake.repository, self.fake.api_url)
            restored = restore_checkpoint(
                STATE, RUN, PLAN_ID, rest, self.cache, target, self.warnings.append, before_attempt=self.attempt
            )
            assert restored is not None and restored.head and restored.checkpoint, self.warnings
            build_on(restored, self.home, self.state / "uploads.json")
        else:
            tasks = [{"id": f"t{n}", "title": f"Task {n}"} for n in range(TASKS)]
            self.plan_path.write_text(json.dumps({"id": PLAN_ID, "name": "Log", "tasks": tasks}))
        context = ActionContext(self.fake.repository, RUN, self.attempt, "", "", self.work, self.work, None, None)
        source = CheckpointSource(context, STATE, self.plan_path, self.work, self.home, None, self.key)
        assert self.artifacts is not None
        self.uploader = CheckpointUploader(
            source, self.artifacts, self.cache, self.state / "uploads.json", self.warnings.append
        )

    def step(self, number: int) -> None:
        """Task `number // 3` starts, works, or finishes; the task before it writes one more event meanwhile."""
        plan = json.loads(self.plan_path.read_text())
        task = plan["tasks"][number // 3]
        session = session_id_for(PLAN_ID, task["id"], 1)
        folder = self.home / "session-state" / session
        if number % 3 == 0:
            task["status"] = "in_progress"
            task["attempts"] = [{"number": 1, "sessionId": session, "reason": "first start", "startedAt": "x"}]
            (folder / "files").mkdir(parents=True)
            (folder / "workspace.yaml").write_text(f"id: {session}\n")
        elif number % 3 == 1:
            (folder / "files" / f"notes-{number}.md").write_bytes(self.rng.randbytes(3000))
            (folder / "workspace.yaml").write_text(f"id: {session}\nsummary: working\n")
        else:
            task["status"] = "done"
        with (folder / "events.jsonl").open("a") as events:
            events.write(json.dumps({"step": number, "data": self.rng.randbytes(1500).hex()}) + "\n")
        if number >= 3:
            before = self.home / "session-state" / session_id_for(PLAN_ID, f"t{number // 3 - 1}", 1)
            with (before / "events.jsonl").open("a") as events:
                events.write(json.dumps({"late": number}) + "\n")
        self.plan_path.write_text(json.dumps(plan))

    def upload(self, *, final: bool = False) -> str:
        assert self.uploader is not None
        self.uploader.request(final=final)
        assert self.uploader.flush(30)
        assert self.warnings == []
        record = UploadRecord.load(self.state / "uploads.json")
        assert record.artifact is not None and record.cached
        return record.artifact

    def snapshot(self) -> Snapshot:
        sessions = {}
        for folder in sorted((self.home / "session-state").iterdir()):
            sessions[folder.name] = {
                path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()
            }
        return self.plan_path.read_bytes(), sessions

    def close(self) -> None:
        if self.uploader is not None:
            self.uploader.close()


def content(checkpoint: Checkpoint) -> Snapshot:
    return checkpoint.plan_bytes, {sid: dict(files) for sid, files in checkpoint.session_files.items()}


def checkpoint_of(segments: RunSegments, name: str, key: str | None) -> tuple[Head, Checkpoint]:
    """The checkpoint whose head is in segment `name`, every piece fetched and checked."""
    order = segments.order(name)
    assert order is not None
    head = open_head(segments.head_segment(name, "artifact"), name, order, key, PLAN_ID, RUN)
    return head, assemble(head.meta, open_pieces(head, segments.fetch_pieces(head), key, segments.place))


def alive(fake: FakeGitHubServices) -> list[str]:
    return sorted(a.name for a in fake.artifacts if a.finalized)


def segments_now(fake: FakeGitHubServices, cache: ActionsCache | None = None) -> RunSegments:
    rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
    return RunSegments(STATE, RUN, rest, cache, lambda warning: pytest.fail(warning))


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "sealed"])
def test_every_head_of_a_run_restores_on_its_own_pruning_keeps_what_live_heads_name_and_nothing_travels_twice(
    fake: FakeGitHubServices, tmp_path: Path, key: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploader_module, "RUN_LIMITS", (8, 5))  # compaction during a run this short, too
    job = Job(fake, tmp_path, 1, key)
    job.start(restore=False)
    saved: dict[str, Snapshot] = {}
    try:
        for number in range(3 * TASKS):
            job.step(number)
            name = job.upload()
            saved[name] = job.snapshot()
            names = alive(fake)
            assert name in names and len(names) <= 20
            # The same bytes as the artifacts, without listing them over REST at every step.
            segments = RunSegments(STATE, RUN, None, job.cache, pytest.fail)
            head, checkpoint = checkpoint_of(segments, name, key)
            assert content(checkpoint) == saved[name]
            if len(names) > 1:  # the fallback before it, restored whole when it was the newest, lost no piece since
                fallback = names[-2]
                older = open_head(
                    segments.head_segment(fallback, "artifact"),
                    fallback,
                    segments.order(fallback) or (0, 0),
                    key,
                    PLAN_ID,
                    RUN,
                )
                assert set(older.segments()) | set(head.segments()) <= set(names)
        name = job.upload(final=True)  # the run's last: compacted to few segments, then one more head
        saved[name] = job.snapshot()
    finally:
        job.close()
    assert len(alive(fake)) <= FINAL_LIMITS[0] + 2 <= 20
    segments = segments_now(fake)
    pickable = [name for _, _, name in segments.heads(pytest.fail, None)]
    assert sorted(pickable) == alive(fake)[-2:]  # older alive segments only hold pieces
    heads = [checkpoint_of(segments, name, key)[0] for name in pickable]
    named = {ref.segment for head in heads for ref in head.pieces}
    assert named <= set(alive(fake))  # no head a re-run could pick names a pruned segment
    assert max(len(head.segments()) for head in heads) <= FINAL_LIMITS[0]
    # The newest head alone gives the whole run's sessions, finished ones included, with every appended range.
    newest = checkpoint_of(segments, alive(fake)[-1], key)[1]
    assert content(newest) == job.snapshot() and len(newest.session_files) == TASKS
    every_segment = [entry.key.removeprefix(f"planeteer-run{RUN}-") for entry in fake.cache_entries]
    assert_unchanged_files_never_travelled_twice(job, every_segment, key)


def assert_unchanged_files_never_travelled_twice(job: Job, uploaded: list[str], key: str | None) -> None:
    """Across every segment uploaded, the session bytes of distinct pieces are the sessions' bytes on disk, once:
    logs travel as appended ranges, finished sessions not at all, and only a rewritten file travels again."""
    segments = RunSegments(STATE, RUN, None, job.cache, pytest.fail)  # every segment has its cache copy
    travelled: dict[str, int] = {}
    for name in uploaded:
        for sha, data in read_segment(segments.head_segment(name, "artifact"), DEFAULT_LIMITS)[1].items():
            piece = open_piece(data, key=key, expected_plan_id=PLAN_ID, expected_run_id=str(RUN))
            travelled[sha] = sum(len(d) for member, d in piece.members.items() if member.startswith("sessions/"))
    on_disk = sum(len(data) for files in job.snapshot()[1].values() for data in files.values())
    first_yaml = sum(len(f"id: {session_id_for(PLAN_ID, f't{n}', 1)}\n") for n in range(TASKS))  # rewritten later
    assert sum(travelled.values()) == on_disk + first_yaml


def test_a_head_of_attempt_two_builds_on_attempt_one_and_the_cache_alone_rebuilds_it(
    fake: FakeGitHubServices, tmp_path: Path
) -> None:
    first = Job(fake, tmp_path, 1, KEY)
    first.start(restore=False)
    try:
        for number in range(14):  # the job was cancelled in the middle of task 4
            first.step(number)
            first.upload()
    finally:
        first.close()

    second = Job(fake, tmp_path, 2, KEY)  # "Re-run failed jobs": attempt 1's artifacts are still there
    second.start(restore=True)
    try:
        for number in range(14, 3 * TASKS):
            second.step(number)
            second.upload()
    finally:
        second.close()
    newest = alive(fake)[-1]
    head, checkpoint = checkpoint_of(segments_now(fake), newest, KEY)
    attempts = {segment.split("-attempt")[1][:3] for segment in head.segments()}
    assert attempts == {"001", "002"}, head.segments()  # attempt 1's pieces did not travel again
    assert content(checkpoint) == second.snapshot()
    untouched = {session_id_for(PLAN_ID, f"t{n}", 1) for n in range(3)}  # done in attempt 1, never written again
    assert not [ref for ref in head.pieces if ref.session in untouched and "-attempt002-" in ref.segment]

    third = fake.rerun_all_jobs(RUN)  # deletes every earlier attempt's artifacts; the cache stays
    assert alive(fake) == []
    env = fake.runtime_env(RUN, third)
    cache = ActionsCache.from_env(env)
    home, plan = tmp_path / "attempt3" / "home", tmp_path / "attempt3" / "plan.json"
    warnings: list[str] = []
    rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
    restored = restore_checkpoint(
        STATE, RUN, PLAN_ID, rest, cache, RestoreTarget(plan, plan.parent, home, KEY), warnings.append,
        before_attempt=third,
    )  # fmt: skip
    assert restored is not None and restored.origin == "cache", warnings
    assert restored.name == newest and warnings == []
    assert plan.read_bytes() == second.snapshot()[0]
    restored_sessions = {
        folder.name: {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        for folder in (home / "session-state").iterdir()
    }
    assert restored_sessions == second.snapshot()[1]


def test_a_restore_downloads_what_its_head_names_and_not_the_cache_copy_of_a_head_it_takes_from_an_artifact(
    fake: FakeGitHubServices, tmp_path: Path
) -> None:
    """The cache's newest entry is looked up to know its name; its bytes are fetched only if its head is tried."""
    first = Job(fake, tmp_path, 1, KEY)
    first.start(restore=False)
    try:
        for number in range(7):
            first.step(number)
            first.upload()
    finally:
        first.close()
    before = len(fake.requests)

    second = Job(fake, tmp_path, 2, KEY)
    second.start(restore=True)
    second.close()

    downloads = [r.path for r in fake.requests[before:] if r.method == "GET" and r.path.startswith(CACHE_BLOBS)]
    assert downloads == [] and second.warnings == []
    assert second.snapshot() == first.snapshot()


def test_the_piece_store_keeps_only_what_the_newest_head_names(fake: FakeGitHubServices, tmp_path: Path) -> None:
    """This machine keeps the pieces compaction may write again, and drops the superseded ones."""
    job = Job(fake, tmp_path, 1, None)
    job.start(restore=False)
    try:
        for number in range(9):
            job.step(number)
            job.upload()
    finally:
        job.close()
    ledger = Ledger.load(job.state / LEDGER, str(RUN))
    assert set(os.listdir(job.state / "pieces")) == {ref.sha256 for ref in ledger.head}


# Forgery, piece by piece ------------------------------------------------------------------------------------

OTHER_KEY = "someone else's key"
FORGERIES = {  # case -> (what the refusal says, keys it applies to)
    "tampered": ("does not match its sha256: tampered with", (None, KEY)),
    "missing": ("is missing: refused", (None, KEY)),
    "other plan": ("checkpoint is of plan 'someone-elses-plan', not 'plan-log'", (None, KEY)),
    "other run": ("it was made for run '1234', not run 7070: refused", (None, KEY)),
    "does not decrypt": ("does not decrypt with this state-key (wrong key or tampered)", (KEY,)),
    "plain among sealed": ("is not encrypted although a state-key is set", (KEY,)),
    "sealed without the key": ("this checkpoint is encrypted: set the state-key input", (None,)),
}


def forged_segment(case: str, key: str | None) -> bytes:
    """A segment whose head (valid, with the right key) names one state piece forged as `case`, as a compromised
    step of the run, or a holder of the key from another plan or run, could upload it."""
    segment = artifact_name(STATE, 1, 1)
    meta = CheckpointMeta(PLAN_ID, str(RUN), 1, 1, None, "2026-11-29T17:00:00.000Z", "plan.json")
    plan = json.dumps({"id": PLAN_ID, "name": "Log", "tasks": [{"id": "t0", "title": "T", "status": "done"}]})
    members, piece_key = {"plan.json": plan.encode()}, key
    if case == "other plan":
        meta = dataclasses.replace(meta, plan_id="someone-elses-plan")
        members = {"plan.json": plan.replace(PLAN_ID, "someone-elses-plan").encode()}
    elif case == "other run":
        meta = dataclasses.replace(meta, run_id="1234")
    elif case == "does not decrypt":
        piece_key = OTHER_KEY
    elif case == "plain among sealed":
        piece_key = None
    elif case == "sealed without the key":
        piece_key = OTHER_KEY
    piece = build_piece(meta, members, piece_key)
    sha = piece_id(piece)
    head_meta = CheckpointMeta(PLAN_ID, str(RUN), 1, 1, None, "2026-11-29T17:00:00.000Z", "plan.json")
    head = Head(head_meta, (PieceRef(sha, len(piece), segment, "state"),)).to_bytes(key)
    stored = (
        {}
        if case == "missing"
        else {sha: piece[:-30] + bytes([piece[-30] ^ 1]) + piece[-29:]}
        if case == "tampered"
        else {sha: piece}
    )
    return write_segment(head, stored)


@pytest.mark.parametrize(
    ("case", "key"),
    [(case, key) for case, (_, keys) in FORGERIES.items() for key in keys],
    ids=[f"{case}-{'sealed' if key else 'plain'}" for case, (_, keys) in FORGERIES.items() for key in keys],
)
def test_a_forged_piece_is_refused_by_name_and_the_run_falls_back_to_the_repositorys_plan(
    fake: FakeGitHubServices, tmp_path: Path, case: str, key: str | None
) -> None:
    attempt1 = ArtifactService.from_env(fake.runtime_env(RUN, 1))
    assert attempt1 is not None
    data = forged_segment(case, key)
    attempt1.upload(artifact_name(STATE, 1, 1), data)
    piece_sha = (
        Head.from_piece(open_piece(read_segment(data, DEFAULT_LIMITS)[0], key=key, expected_plan_id=None))
        .pieces[0]
        .sha256
    )
    rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
    target = RestoreTarget(tmp_path / "plan.json", tmp_path, tmp_path / "home", key)
    warnings: list[str] = []

    restored = restore_checkpoint(STATE, RUN, PLAN_ID, rest, None, target, warnings.append, before_attempt=2)

    reason = FORGERIES[case][0]
    segment = artifact_name(STATE, 1, 1)
    assert restored is None and not target.plan_path.exists() and not target.copilot_home.exists()
    assert warnings[0].startswith(
        f"checkpoint {segment} from the artifact refused: piece {piece_sha[:12]} (state, in {segment})"
    )
    assert reason in warnings[0], warnings[0]
    assert warnings[-1] == "no usable checkpoint: starting from the plan file in the repository"


def test_a_damaged_segment_still_shows_its_head_and_is_refused_once_its_pieces_are_opened(
    fake: FakeGitHubServices, tmp_path: Path
) -> None:
    """A restore reads a head alone, to start fetching what it names; every other member's bytes are checked
    when the pieces are opened, still before anything is put back."""
    data = bytearray(forged_segment("tampered", None))
    stored_piece = data.rindex(b"PK\x03\x04")  # the last local member: the piece, stored after the head
    data[stored_piece + 200] ^= 1  # past its local header: the zip's own checksum no longer matches
    segment = artifact_name(STATE, 1, 1)

    assert open_head(bytes(data), segment, (1, 1), None, PLAN_ID, RUN).meta.plan_id == PLAN_ID  # still read

    with pytest.raises(CheckpointInvalid, match=r"is damaged \(bad data or checksum\): refused"):
        read_segment(bytes(data), DEFAULT_LIMITS)  # what fetching the pieces does, before any is opened
    attempt1 = ArtifactService.from_env(fake.runtime_env(RUN, 1))
    assert attempt1 is not None
    attempt1.upload(segment, bytes(data))
    rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
    target = RestoreTarget(tmp_path / "plan.json", tmp_path, tmp_path / "home", None)
    warnings: list[str] = []
    assert restore_checkpoint(STATE, RUN, PLAN_ID, rest, None, target, warnings.append, before_attempt=2) is None
    assert warnings[0].startswith(f"checkpoint {segment} from the artifact refused: checkpoint member"), warnings
    assert "is damaged (bad data or checksum): refused" in warnings[0] and not target.plan_path.exists()


# Compaction ---------------------------------------------------------------------------------------------------


ABOVE, COMPACT_TO = 10, 6


def test_compaction_moves_the_smallest_of_this_attempts_segments_and_never_an_earlier_attempts() -> None:
    meta = CheckpointMeta(PLAN_ID, str(RUN), 2, 20, None, "2026-11-29T17:00:00.000Z", "plan.json")
    earlier = [artifact_name(STATE, 1, n) for n in range(1, 16)]  # more than the limit, and not movable
    own = [artifact_name(STATE, 2, n) for n in range(1, 20)]
    new = artifact_name(STATE, 2, 20)
    refs = [PieceRef(f"{n:064x}", 100, name, "bundle") for n, name in enumerate(earlier)]
    refs += [PieceRef(f"{100 + n:064x}", 1000 * (n + 1), name, "bundle") for n, name in enumerate(own)]
    head = Head(meta, tuple(refs))

    chosen = to_compact(head, new, lambda name: "-attempt002-" in name, (ABOVE, COMPACT_TO))
    compacted, moved = take_over(head, new, chosen)

    assert {ref.segment for ref in moved} == set(own[: len(own) + 1 - COMPACT_TO])  # the smallest ones
    assert {name for name in compacted.segments() if "-attempt002-" in name} == {*own[-(COMPACT_TO - 1) :], new}
    assert [ref.sha256 for ref in compacted.pieces] == [ref.sha256 for ref in head.pieces]  # the same order
    assert {ref.segment for ref in compacted.pieces if ref.segment in earlier} == set(earlier)
    small = Head(meta, tuple(refs[:3] + refs[-3:]))
    assert to_compact(small, new, lambda name: "-attempt002-" in name, (ABOVE, COMPACT_TO)) == set()
    # A moved piece's cache copy stays where it was: "Re-run all jobs" still finds it there.
    assert all(ref.cache_place == own[n] for n, ref in enumerate(compacted.pieces[len(earlier) :]) if ref in moved)
    assert {ref.cached_in for ref in compacted.pieces if ref.segment == new} == set(own[: len(own) + 1 - COMPACT_TO])

    previous = [own[0], own[1]]  # what the head before the newest named
    assert deletable([*own, new], compacted, new, previous) == sorted(
        set(own) - set(compacted.segments()) - {own[0], own[1]}
    )


def test_the_runs_last_checkpoint_compacts_tightly_and_one_more_head_lets_the_rest_go(
    fake: FakeGitHubServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During a run alive segments cost nothing and rewriting does; at its end few must stay alive."""
    monkeypatch.setattr(uploader_module, "FINAL_LIMITS", (4, 3))
    job = Job(fake, tmp_path, 1, None)
    job.start(restore=False)
    try:
        for number in range(12):
            job.step(number)
            job.upload()
        before = alive(fake)
        last = job.upload(final=True)
    finally:
        job.close()
    assert len(before) > 6  # the run's loose limit let them live
    created = [entry.key.removeprefix(f"planeteer-run{RUN}-") for entry in fake.cache_entries]
    assert created[-2:] == [artifact_name(STATE, 1, 13), artifact_name(STATE, 1, 14)] and last == created[-1]
    segments = segments_now(fake)
    head, checkpoint = checkpoint_of(segments, last, None)
    assert len(head.segments()) <= 4 and set(alive(fake)) == {*head.segments(), last, created[-2]}
    assert content(checkpoint) == job.snapshot()
