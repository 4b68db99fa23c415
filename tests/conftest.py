"""Fixtures many test files share. Plain helpers (git, wait_for, /proc) are in helpers.py."""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.github_services import FakeGitHubServices
from harness import SUITE_ENV

DATA = Path(__file__).parent / "data"
# Every process this suite starts, however deep, inherits this mark; process checks look only at marked
# processes, so two suites running on one machine cannot fail each other.
os.environ[SUITE_ENV] = uuid.uuid4().hex
# Children start with SIGINT acting, as a terminal's foreground job does. A suite launched as a shell's background
# job inherits SIGINT ignored, and children keep that until planeteer installs its handler: a signal a test sends in
# a child's first milliseconds would be lost, and the test hang rather than test anything.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    """A copy of a plan exactly as the TypeScript Planeteer writes it."""
    target = tmp_path / ".planeteer" / "plan-1732492800000.json"
    target.parent.mkdir()
    shutil.copy(DATA / "planeteer-plan.json", target)
    return target


@pytest.fixture
def fake() -> Iterator[FakeGitHubServices]:
    """The loopback artifact, cache and REST services, fresh for each test."""
    with FakeGitHubServices() as services:
        yield services


@pytest.fixture
def sleeps() -> list[float]:
    """Where a RetryPolicy given `sleep=sleeps.append` records its waits instead of sleeping them."""
    return []


@pytest.fixture
def every_checkpoint_an_artifact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every checkpoint also goes out as an artifact, as in a job without a cache to write: what the tests of
    compaction, pruning and forged artifacts study, in runs too short for `placement` to pick artifacts."""
    from planeteer_action.action import uploader

    monkeypatch.setattr(uploader, "artifact_due", lambda *args: True)
