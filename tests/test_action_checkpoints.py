"""The action's checkpoint plumbing in isolation: the background uploader and what a restore accepts.
The end-to-end behaviour is in test_action_e2e.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from checkpoint_forgery import one_segment
from fakes.github_services import FakeGitHubServices

from planeteer_action.action.context import ActionContext
from planeteer_action.action.upload_budget import DEFAULT_BUDGET, UploadBudget
from planeteer_action.action.uploader import CheckpointSource, CheckpointUploader, UploadRecord
from planeteer_action.checkpoints.archive import assemble
from planeteer_action.checkpoints.errors import CheckpointRestoreFailed
from planeteer_action.checkpoints.manifest import CheckpointMeta
from planeteer_action.checkpoints.naming import artifact_name, cache_key
from planeteer_action.checkpoints.packer import Ledger, Packed, PackSource, pack
from planeteer_action.checkpoints.pieces import open_piece
from planeteer_action.checkpoints.restore import RestoreTarget, restore_checkpoint
from planeteer_action.checkpoints.workspace import WorkspaceChangesError
from planeteer_action.engine.events import RunFinished, TaskDone, TaskStarted
from planeteer_action.github.artifacts import ArtifactService
from planeteer_action.github.cache import ActionsCache
from planeteer_action.plan.session_ids import session_id_for
from planeteer_action.plan.store import write_atomic

RUN = 5150


@dataclass
class _Context:
    run_id: int = RUN
    run_attempt: int = 1


@dataclass
class StubSource:
    """Stands in for CheckpointSource: packs the plan file alone (no git, no sessions), or raises what it is told."""

    plan_path: Path
    state_name: str = "stub"
    context: _Context = field(default_factory=_Context)
    key: str | None = None
    failures: list[BaseException] = field(default_factory=list)

    def pack(self, ledger: Ledger, sequence: int, segment: str) -> Packed:
        if self.failures:
            raise self.failures.pop(0)
        home = self.plan_path.parent / "no-home"
        source = PackSource(self.plan_path, self.plan_path.parent, home, None, None, [], "plan.json")
        return pack(source, ledger, self.context.run_attempt, sequence, segment)


def write_plan(path: Path, name: str) -> None:
    """Saved as the engine saves plans: atomically, so an upload never reads half of one."""
    write_atomic(path, json.dumps({"id": "plan-stub", "name": name, "tasks": []}).encode())


def uploader(fake: FakeGitHubServices, tmp_path: Path, source: StubSource, warnings: list[str]) -> CheckpointUploader:
    env = fake.runtime_env(RUN, 1)
    artifacts, cache = ArtifactService.from_env(env), ActionsCache.from_env(env)
    assert artifacts is not None and cache is not None
    return CheckpointUploader(source, artifacts, cache, tmp_path / "uploads.json", warnings.append)  # type: ignore[arg-type]


@pytest.mark.usefixtures("every_checkpoint_an_artifact")
def test_an_unexpected_error_is_a_warning_and_the_uploader_lives_on(fake: FakeGitHubServices, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    write_plan(plan, "first")
    source = StubSource(plan, failures=[RuntimeError("boom")])
    warnings: list[str] = []
    up = uploader(fake, tmp_path, source, warnings)
    try:
        up(TaskStarted(task_id="a", session_id="s", attempt=1, mode="create", reason="first start"))
        assert up.flush(10)
        assert warnings == ["checkpoint upload failed (the next change will try again): RuntimeError: boom"]
        up(TaskDone(task_id="a", session_id="s", summary="ok"))
        assert up.flush(10)
    finally:
        up.close()
    assert [a.name for a in fake.artifacts] == ["planeteer-stub-attempt001-seq000002"], warnings


@dataclass
class FinishingTasks(StubSource):
    """The first `finishing` packs each catch a task finishing: the plan is saved meanwhile, and git fails on its
    worktree, which was handed on; the ones after fail `broken` times with the plan left as it was."""

    finishing: int = 0
    broken: int = 0

    def pack(self, ledger: Ledger, sequence: int, segment: str) -> Packed:
        if self.finishing or self.broken:
            if self.finishing:
                self.finishing -= 1
                write_plan(self.plan_path, f"a task finished ({self.finishing} to go)")
            else:
                self.broken -= 1
            raise WorkspaceChangesError("git write-tree failed in …/t0003: fatal: not a git repository")
        return super().pack(ledger, sequence, segment)


def test_a_checkpoint_that_caught_a_task_finishing_is_packed_again_and_a_broken_checkout_is_not(
    fake: FakeGitHubServices, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    write_plan(plan, "first")
    warnings: list[str] = []
    source = FinishingTasks(plan, finishing=2)
    up = uploader(fake, tmp_path, source, warnings)
    try:
        up.request()
        assert up.flush(10)
        assert warnings == [] and source.finishing == 0  # packed a third time, and uploaded
        assert UploadRecord.load(tmp_path / "uploads.json").cached
        source.broken = 1  # the same failure with the plan unchanged: a real one, not tried again
        up.request()
        assert up.flush(10)
        assert source.broken == 0 and len(warnings) == 1
        source.finishing = 3  # tasks finishing under every read: the next change tries again
        up.request()
        assert up.flush(10)
    finally:
        up.close()
    failed = "checkpoint upload failed (the next change will try again): git write-tree failed in"
    assert len(warnings) == 2 and all(warning.startswith(failed) for warning in warnings), warnings


@pytest.mark.usefixtures("every_checkpoint_an_artifact")
def test_every_segment_gets_its_cache_copy_and_superseded_segments_are_pruned(
    fake: FakeGitHubServices, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    write_plan(plan, "first")
    warnings: list[str] = []
    up = uploader(fake, tmp_path, StubSource(plan), warnings)
    try:
        for n in range(4):
            write_plan(plan, f"change {n}")
            up.request()
            assert up.flush(10)
        up(RunFinished(status="complete", counts={}))
        assert up.flush(10)
        assert up.finish(10)  # nothing changed since the run's last upload: no extra upload
    finally:
        up.close()
    assert warnings == []
    # Segments hold only what is new, so each has its cache copy: "Re-run all jobs" finds every piece there.
    assert sorted(e.key for e in fake.cache_entries) == [
        f"planeteer-run{RUN}-planeteer-stub-attempt001-seq{n:06d}" for n in range(1, 6)
    ]
    # The plan's state piece is superseded at every upload: only the newest head and the one before it stay.
    assert sorted(a.name for a in fake.artifacts) == [f"planeteer-stub-attempt001-seq00000{n}" for n in (4, 5)]
    record = UploadRecord.load(tmp_path / "uploads.json")
    assert record.artifact == "planeteer-stub-attempt001-seq000005" and record.cached


def test_the_final_step_uploads_only_what_is_missing(fake: FakeGitHubServices, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    write_plan(plan, "first")
    first = uploader(fake, tmp_path, StubSource(plan), [])
    first.request()
    assert first.flush(10)
    first.close()
    write_plan(plan, "changed")  # the run step died after this save
    final = uploader(fake, tmp_path, StubSource(plan), [])
    try:
        assert final.upload_if_changed(10) is True
        assert final.upload_if_changed(10) is False
    finally:
        final.close()
    assert UploadRecord.load(tmp_path / "uploads.json").artifact == "planeteer-stub-attempt001-seq000002"


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        ({"id": "plan-x", "name": "X", "tasks": [{"id": "t", "title": "T"}]}, None),
        ({"id": "plan-other", "name": "X", "tasks": [{"id": "t", "title": "T"}]}, "plan.json is of plan 'plan-other'"),
        ({"id": "plan-x", "tasks": "none"}, "plan.json is not a valid plan"),
    ],
    ids=["valid", "plan-of-another-id", "not-a-plan"],
)
def test_a_checkpoints_plan_must_be_a_plan_of_the_expected_id(
    fake: FakeGitHubServices, tmp_path: Path, plan: dict[str, object], reason: str | None
) -> None:
    meta = CheckpointMeta("plan-x", str(RUN), 1, 1, None, "2026-11-24T10:00:00.000Z", "plan.json")
    data = one_segment("x", meta, {"plan.json": json.dumps(plan).encode()})
    cache = ActionsCache.from_env(fake.runtime_env(RUN, 1))
    assert cache is not None and cache.save(cache_key("x", RUN, 1, 1), data)
    target = RestoreTarget(tmp_path / "plan.json", tmp_path, tmp_path / "home", None)
    warnings: list[str] = []

    restored = restore_checkpoint("x", RUN, "plan-x", None, cache, target, warnings.append)

    if reason is None:
        assert restored is not None and json.loads(target.plan_path.read_text()) == plan and warnings == []
    else:
        assert restored is None and not target.plan_path.exists()
        assert warnings[0].startswith("checkpoint planeteer-x-attempt001-seq000001 from the cache refused: its ")
        assert reason in warnings[0]


def test_the_source_holds_the_plans_live_sessions_and_the_work_but_not_the_plans_own_files(tmp_path: Path) -> None:
    work = tmp_path / "work"
    base = checkout(work)
    live, deleted = session_id_for("plan-x", "t", 2), session_id_for("plan-x", "t", 1)
    attempts = [
        {"number": 1, "sessionId": deleted, "reason": "first start", "startedAt": "x", "sessionDeleted": True},
        {"number": 2, "sessionId": live, "reason": "fresh", "startedAt": "y"},
    ]
    plan = work / "plan.json"
    plan.write_text(
        json.dumps({"id": "plan-x", "name": "X", "tasks": [{"id": "t", "title": "T", "attempts": attempts}]})
    )
    for name in ("plan.md", "plan.json.lock", "notes.md"):
        (work / name).write_text("x\n")
    for session_id in (live, deleted):
        (tmp_path / "home" / "session-state" / session_id).mkdir(parents=True)
        (tmp_path / "home" / "session-state" / session_id / "events.jsonl").write_text("{}\n")
    context = ActionContext("o/r", RUN, 1, "", "", work, tmp_path, None, None)
    source = CheckpointSource(context, "x", plan, work, tmp_path / "home", base, None)

    packed = source.pack(Ledger(run_id=str(RUN)), 3, artifact_name("x", 1, 3))

    pieces = [open_piece(packed.pieces[ref.sha256], key=None, expected_plan_id="plan-x") for ref in packed.head.pieces]
    checkpoint = assemble(packed.head.meta, pieces)
    assert checkpoint.session_ids == [live] and checkpoint.meta.sequence == 3
    assert packed.plan_bytes == plan.read_bytes()
    assert b"b/notes.md" in checkpoint.changes
    assert b"plan.md" not in checkpoint.changes and b"plan.json" not in checkpoint.changes


# Restoring is all or nothing ------------------------------------------------------------------------------

PLAN_X = json.dumps({"id": "plan-x", "name": "X", "tasks": [{"id": "t", "title": "T"}]}).encode()
SESSION = session_id_for("plan-x", "t", 1)
NEW_NOTES = (
    b"diff --git a/notes.md b/notes.md\nnew file mode 100644\n--- /dev/null\n+++ b/notes.md\n@@ -0,0 +1 @@\n+work\n"
)


def checkout(folder: Path) -> str:
    """A git checkout with one commit; its commit id."""
    folder.mkdir()
    (folder / "README.md").write_text("hello\n")
    for args in (
        ["init", "-q"],
        ["add", "README.md"],
        ["-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "1"],
    ):
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=folder, check=True, capture_output=True, text=True
    ).stdout.strip()


def everything_below(root: Path) -> dict[str, bytes | str]:
    """Files (bytes), links (their target) and folders ("dir") below `root`, outside `.git`."""
    found: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            key = path.relative_to(root).as_posix()
            found[key] = os.readlink(path) if path.is_symlink() else "dir" if path.is_dir() else path.read_bytes()
    return found


def restore_from_cache(fake: FakeGitHubServices, data: bytes, target: RestoreTarget, warnings: list[str]) -> object:
    cache = ActionsCache.from_env(fake.runtime_env(RUN, 1))
    assert cache is not None and cache.save(cache_key("x", RUN, 1, 1), data)
    return restore_checkpoint("x", RUN, "plan-x", None, cache, target, warnings.append)


LINK_OUT = (
    b"diff --git a/evil b/evil\nnew file mode 120000\nindex 0000000..1234567\n--- /dev/null\n+++ b/evil\n"
    b"@@ -0,0 +1 @@\n+/root/.bashrc\n\\ No newline at end of file\n"
)


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        (
            {"workspace.patch": NEW_NOTES, f"sessions/{SESSION}/a": b"x", f"sessions/{SESSION}/a/b": b"y"},
            "holds 'a' both as a file and as a folder",
        ),
        ({"workspace.patch": b"--- a/escape.txt\n+++ b/../escape.txt\n@@ -0,0 +1 @@\n+EVIL\n"}, "outside the checkout"),
        ({"workspace.patch": NEW_NOTES + LINK_OUT}, "makes the link 'evil' point to '/root/.bashrc'"),
    ],
    ids=["session-file-and-folder", "unified-diff-escaping", "symlink-leaving-the-checkout"],
)
def test_a_checkpoint_that_cannot_be_put_back_whole_is_refused_before_anything_changes(
    fake: FakeGitHubServices, tmp_path: Path, members: dict[str, bytes], reason: str
) -> None:
    base = checkout(tmp_path / "work")
    meta = CheckpointMeta("plan-x", str(RUN), 1, 1, base, "2026-11-24T10:00:00.000Z", "plan.json")
    target = RestoreTarget(tmp_path / "work" / "plan.json", tmp_path / "work", tmp_path / "home", None)
    before = everything_below(tmp_path)
    warnings: list[str] = []

    restored = restore_from_cache(fake, one_segment("x", meta, {"plan.json": PLAN_X, **members}), target, warnings)

    assert restored is None
    assert warnings[0].startswith("checkpoint planeteer-x-attempt001-seq000001 from the cache refused: its ")
    assert reason in warnings[0]
    assert everything_below(tmp_path) == before


def test_sessions_that_cannot_be_written_stop_the_restore_before_the_work_is_put_back(
    fake: FakeGitHubServices, tmp_path: Path
) -> None:
    base = checkout(tmp_path / "work")
    source = tmp_path / "source-home" / "session-state" / SESSION
    source.mkdir(parents=True)
    (source / "events.jsonl").write_text("{}\n")
    meta = CheckpointMeta("plan-x", str(RUN), 1, 1, base, "2026-11-24T10:00:00.000Z", "plan.json")
    members = {"plan.json": PLAN_X, "workspace.patch": NEW_NOTES, f"sessions/{SESSION}/events.jsonl": b"{}\n"}
    data = one_segment("x", meta, members)
    (tmp_path / "home").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "home" / "session-state").symlink_to(tmp_path / "elsewhere")  # refused as a symlink
    target = RestoreTarget(tmp_path / "work" / "plan.json", tmp_path / "work", tmp_path / "home", None)
    before = everything_below(tmp_path)

    with pytest.raises(CheckpointRestoreFailed, match="is a symlink"):
        restore_from_cache(fake, data, target, [])

    assert everything_below(tmp_path) == before


@pytest.mark.usefixtures("every_checkpoint_an_artifact")  # the budget counts every checkpoint as an artifact
def test_a_thousand_task_plan_stays_inside_its_artifact_budget_and_still_saves_its_last_state(
    fake: FakeGitHubServices, tmp_path: Path
) -> None:
    """2,000 task state changes, fired faster than uploads go out, against a small budget of the real shape."""
    budget = UploadBudget(per_attempt=30, final_reserve=3, free=5, first_interval=0.02, doubling_every=5)
    plan = tmp_path / "plan.json"
    write_plan(plan, "first")
    warnings: list[str] = []
    env = fake.runtime_env(RUN, 1)
    artifacts, cache = ArtifactService.from_env(env), ActionsCache.from_env(env)
    assert artifacts is not None and cache is not None
    source = StubSource(plan)
    up = CheckpointUploader(source, artifacts, cache, tmp_path / "uploads.json", warnings.append, budget)  # type: ignore[arg-type]
    try:
        for change in range(2000):
            write_plan(plan, f"change {change}")
            up.request()
            time.sleep(0.001)
        write_plan(plan, "last")
        up(RunFinished(status="complete", counts={}))
        assert up.finish(20)
    finally:
        up.close()
    created = {r.body for r in fake.requests if r.path.endswith("/CreateArtifact")}
    assert len(created) <= budget.per_attempt
    record = UploadRecord.load(tmp_path / "uploads.json")
    assert record.uploads == len(created) and record.cached
    assert record.plan_sha256 == hashlib.sha256(plan.read_bytes()).hexdigest()  # the last state went out
    assert sum("checkpoint uploads are paused" in w for w in warnings) <= 1
    assert [w for w in warnings if "paused" not in w] == []


@pytest.mark.parametrize("task_seconds", [0.5, 5.0, 60.0, 600.0])
@pytest.mark.parametrize("upload_seconds", [0.3, 3.0])
def test_the_default_budget_bounds_any_plan_over_time(task_seconds: float, upload_seconds: float) -> None:
    """A 1,000-task run, simulated instant by instant: uploads as the worker makes them (one in flight, one
    waiting, newest wins, the budget's waits) never exceed the budget, which is under GitHub's 500, and the
    run's final state is always uploaded."""
    budget = DEFAULT_BUDGET
    assert budget.per_attempt < 500
    changes = [i * task_seconds / 2 for i in range(2000)]  # every start and end of 1,000 tasks
    used, now = 0, 0.0
    last_upload: float | None = None
    pending: float | None = None
    uploaded_change: float | None = -1.0
    events = iter(changes)
    upcoming = next(events, None)
    while upcoming is not None or pending is not None:
        if pending is None and upcoming is not None:
            now, pending, upcoming = max(now, upcoming), upcoming, next(events, None)
            continue
        while upcoming is not None and upcoming <= now:  # newer changes replace the waiting one
            pending, upcoming = upcoming, next(events, None)
        wait = budget.wait(used, now - last_upload if last_upload is not None else float("inf"), final=False)
        if wait is None:
            pending = None
        elif wait > 0 and upcoming is not None and now + wait > upcoming:
            now = upcoming
        else:
            now += wait
            used, last_upload, uploaded_change = used + 1, now, pending
            now += upload_seconds
            pending = None
    assert budget.wait(used, 0.0, final=True) == 0.0  # the final checkpoint always finds room
    assert used + 1 <= budget.per_attempt
    assert uploaded_change is not None and uploaded_change <= changes[-1]
