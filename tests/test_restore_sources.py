"""Where a restore finds a run's checkpoint: the artifacts, or the cache copy that outlives "Re-run all jobs"
(also for `planeteer pull` in a workflow step), each download capped at the archive limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from checkpoint_forgery import one_segment
from fakes.github_services import FakeGitHubServices

from planeteer_action.checkpoints import fetch
from planeteer_action.checkpoints.manifest import CheckpointMeta
from planeteer_action.checkpoints.naming import artifact_name, cache_key
from planeteer_action.checkpoints.restore import RestoreTarget, restore_checkpoint
from planeteer_action.checkpoints.zip_io import Limits
from planeteer_action.github.artifacts import ArtifactService
from planeteer_action.github.cache import ActionsCache
from planeteer_action.github.run_artifacts import RunArtifacts

RUN = 6060
STATE = "plan-x"  # the default state name of plan-x
PLAN = {"id": "plan-x", "name": "X", "tasks": []}


@pytest.fixture
def fake() -> Iterator[FakeGitHubServices]:
    with FakeGitHubServices() as services:
        yield services


def checkpoint(tmp_path: Path, sequence: int) -> bytes:
    meta = CheckpointMeta("plan-x", str(RUN), 1, sequence, None, "2026-11-24T10:00:00.000Z", "plan.json")
    return one_segment(STATE, meta, {"plan.json": json.dumps(PLAN).encode()})


def attempt_one_saved_both_copies(fake: FakeGitHubServices, tmp_path: Path) -> None:
    env = fake.runtime_env(RUN, 1)
    artifacts, cache = ArtifactService.from_env(env), ActionsCache.from_env(env)
    assert artifacts is not None and cache is not None
    data = checkpoint(tmp_path, 3)
    artifacts.upload(artifact_name(STATE, 1, 3), data)
    assert cache.save(cache_key(STATE, RUN, 1, 3), data)


def test_after_rerun_all_jobs_the_cache_copy_is_restored(fake: FakeGitHubServices, tmp_path: Path) -> None:
    attempt_one_saved_both_copies(fake, tmp_path)
    attempt = fake.rerun_all_jobs(RUN)  # deletes attempt 1's artifacts, keeps the cache
    rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
    assert rest.list(RUN) == []
    cache = ActionsCache.from_env(fake.runtime_env(RUN, attempt))
    target = RestoreTarget(tmp_path / "plan.json", tmp_path, tmp_path / "home", None)
    warnings: list[str] = []

    restored = restore_checkpoint(STATE, RUN, "plan-x", rest, cache, target, warnings.append, before_attempt=attempt)

    assert restored is not None and (restored.origin, restored.attempt, restored.sequence) == ("cache", 1, 3)
    assert json.loads(target.plan_path.read_text()) == PLAN and warnings == []


def test_a_cache_the_job_may_not_read_is_not_read(fake: FakeGitHubServices, tmp_path: Path) -> None:
    attempt_one_saved_both_copies(fake, tmp_path)
    attempt = fake.rerun_all_jobs(RUN)
    cache = ActionsCache.from_env({**fake.runtime_env(RUN, attempt), "ACTIONS_CACHE_MODE": "write-only"})
    target = RestoreTarget(tmp_path / "plan.json", tmp_path, tmp_path / "home", None)
    warnings: list[str] = []

    assert restore_checkpoint(STATE, RUN, "plan-x", None, cache, target, warnings.append) is None
    assert not [r for r in fake.requests if r.path.endswith("/GetCacheEntryDownloadURL")]
    assert "readable only from a GitHub Actions job" in warnings[0]


def test_both_downloads_stop_at_the_archive_limit(
    fake: FakeGitHubServices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One cap for every copy: a segment over the archive limit is not downloaded past it."""
    attempt_one_saved_both_copies(fake, tmp_path)
    size = len(checkpoint(tmp_path, 3))
    monkeypatch.setattr(fetch, "DEFAULT_LIMITS", Limits(max_archive_bytes=size - 1))
    env = fake.runtime_env(RUN, 2)
    rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
    target = RestoreTarget(tmp_path / "plan.json", tmp_path, tmp_path / "home", None)
    warnings: list[str] = []

    assert restore_checkpoint(STATE, RUN, "plan-x", rest, None, target, warnings.append) is None
    assert restore_checkpoint(STATE, RUN, "plan-x", None, ActionsCache.from_env(env), target, warnings.append) is None

    assert f"the limit of {size - 1} bytes" in warnings[0] and "from the artifact refused" in warnings[0]
    assert f"the limit of {size - 1} bytes" in warnings[2], warnings
    assert not target.plan_path.exists()


def pull(fake: FakeGitHubServices, workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    planeteer = str(Path(sys.executable).with_name("planeteer"))
    workdir.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PLANETEER_", "GITHUB_", "GH_", "ACTIONS_"))}
    return subprocess.run(
        [planeteer, "pull", "--repository", fake.repository, "--run", str(RUN), "--plan-id", "plan-x",
         "--plan", "plan.json", "--workdir", str(workdir), "--copilot-home", str(workdir / "home"),
         "--api-url", fake.api_url],
        env={**clean, "GITHUB_TOKEN": fake.rest_token, **env}, cwd=workdir, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_pull_in_a_workflow_step_finds_the_cache_copy_after_rerun_all_jobs(
    fake: FakeGitHubServices, tmp_path: Path
) -> None:
    attempt_one_saved_both_copies(fake, tmp_path)
    fake.rerun_all_jobs(RUN)

    elsewhere = pull(fake, tmp_path / "laptop", {})
    assert elsewhere.returncode != 0, elsewhere.stdout + elsewhere.stderr
    assert "readable only from a GitHub Actions job" in elsewhere.stderr

    in_a_step = pull(fake, tmp_path / "step", fake.runtime_env(RUN + 1))  # a later workflow of the repository
    assert in_a_step.returncode == 0, in_a_step.stdout + in_a_step.stderr
    assert "from the cache (run 6060, attempt 1, save 3)" in in_a_step.stdout
    assert json.loads((tmp_path / "step" / "plan.json").read_text())["id"] == "plan-x"


def test_a_forged_cache_copy_does_not_stand_in_for_the_artifact_of_the_same_name(
    fake: FakeGitHubServices, tmp_path: Path
) -> None:
    env = fake.runtime_env(RUN, 1)
    artifacts, cache = ArtifactService.from_env(env), ActionsCache.from_env(env)
    assert artifacts is not None and cache is not None
    artifacts.upload(artifact_name(STATE, 1, 3), checkpoint(tmp_path, 3))
    assert cache.save(cache_key(STATE, RUN, 1, 3), b"PK\x03\x04 not what was uploaded")
    rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
    target = RestoreTarget(tmp_path / "plan.json", tmp_path, tmp_path / "home", None)
    warnings: list[str] = []

    restored = restore_checkpoint(STATE, RUN, "plan-x", rest, cache, target, warnings.append, before_attempt=2)

    assert restored is not None and restored.origin == "artifact", warnings
    assert json.loads(target.plan_path.read_text()) == PLAN and warnings == []
