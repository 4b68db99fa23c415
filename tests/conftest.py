from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from harness import SUITE_ENV

DATA = Path(__file__).parent / "data"
# Every process this suite starts, however deep, inherits this mark; process checks look only at marked
# processes, so two suites running on one machine cannot fail each other.
os.environ[SUITE_ENV] = uuid.uuid4().hex


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    """A copy of a plan exactly as the TypeScript Planeteer writes it."""
    target = tmp_path / ".planeteer" / "plan-1732492800000.json"
    target.parent.mkdir()
    shutil.copy(DATA / "planeteer-plan.json", target)
    return target
