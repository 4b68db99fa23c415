from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    """A copy of a plan exactly as the TypeScript Planeteer writes it."""
    target = tmp_path / ".planeteer" / "plan-1732492800000.json"
    target.parent.mkdir()
    shutil.copy(DATA / "planeteer-plan.json", target)
    return target
