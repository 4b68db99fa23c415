"""The action's checkpoint plumbing in isolation: the background uploader and what a restore accepts.
The end-to-end behaviour is in test_action_e2e.py."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fakes.github_services import FakeGitHubServices

from planeteer_action.action.uploader import KEEP_PER_ATTEMPT, CheckpointUploader, UploadRecord
from planeteer_action.checkpoints.archive import CheckpointMeta, build_checkpoint
from planeteer_action.checkpoints.naming import cache_key
from planeteer_action.checkpoints.restore import RestoreTarget, restore_checkpoint
from planeteer_action.engine.events import RunFinished, TaskDone, TaskStarted
from planeteer_action.github.artifacts import ArtifactService
from planeteer_action.github.cache import ActionsCache

RUN = 5150


@dataclass
class _Context:
    run_id: int = RUN
    run_attempt: int = 1


@dataclass
class StubSource:
    """Stands in for CheckpointSource: builds `checkpoint-<sequence>` bytes, or raises what it is told to."""

    plan_path: Path
    state_name: str = "stub"
    context: _Context = field(default_factory=_Context)
    failures: list[BaseException] = field(default_factory=list)

    def build(self, sequence: int) -> tuple[bytes, str]:
        if self.failures:
            raise self.failures.pop(0)
        plan = self.plan_path.read_bytes()
        return f"checkpoint-{sequence}".encode(), hashlib.sha256(plan).hexdigest()


def uploader(fake: FakeGitHubServices, tmp_path: Path, source: StubSource, warnings: list[str]) -> CheckpointUploader:
    env = fake.runtime_env(RUN, 1)
    artifacts, cache = ArtifactService.from_env(env), ActionsCache.from_env(env)
    assert artifacts is not None and cache is not None
    return CheckpointUploader(source, artifacts, cache, tmp_path / "uploads.json", warnings.append)  # type: ignore[arg-type]


def test_an_unexpected_error_is_a_warning_and_the_uploader_lives_on(fake: FakeGitHubServices, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
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
    assert [a.name for a in fake.artifacts] == ["planeteer-stub-attempt001-seq000002"]


def test_the_cache_gets_the_first_checkpoint_and_the_last_not_every_one(
    fake: FakeGitHubServices, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    warnings: list[str] = []
    up = uploader(fake, tmp_path, StubSource(plan), warnings)
    try:
        for n in range(4):
            plan.write_text(f'{{"n": {n}}}')
            up.request()
            assert up.flush(10)
        assert len(fake.cache_entries) == 1  # the first one only: the rest are within the interval
        up(RunFinished(status="complete", counts={}))
        assert up.flush(10)
        assert up.finish(10)  # nothing changed since the run's last upload: no extra upload
    finally:
        up.close()
    assert warnings == []
    assert sorted(e.key for e in fake.cache_entries) == [
        f"planeteer-run{RUN}-planeteer-stub-attempt001-seq000001",
        f"planeteer-run{RUN}-planeteer-stub-attempt001-seq000005",
    ]
    assert len(fake.artifacts) == KEEP_PER_ATTEMPT  # the older ones were pruned
    record = UploadRecord.load(tmp_path / "uploads.json")
    assert record.artifact == "planeteer-stub-attempt001-seq000005" and record.cached


def test_the_final_step_uploads_only_what_is_missing(fake: FakeGitHubServices, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    first = uploader(fake, tmp_path, StubSource(plan), [])
    first.request()
    assert first.flush(10)
    first.close()
    plan.write_text('{"changed": true}')  # the run step died after this save
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
    data = build_checkpoint(meta, json.dumps(plan).encode(), tmp_path / "no-home", [], b"")
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
