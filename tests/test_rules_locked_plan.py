"""The rules a run applies are checked on the plan it runs: the one read again under the plan's lock, not only
the one read before it. A hand edit in between that breaks a rule is refused like any bad rule (one line,
exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from planeteer_action.cli.main import main
from planeteer_action.plan.lock import PlanLock


def plan_json(tasks: list[dict[str, Any]]) -> str:
    return json.dumps({"id": "p", "name": "n", "tasks": tasks}, indent=2)


BROKEN_BY_HAND = [
    (
        {"id": "a", "title": "t", "denyTools": ["shell(git push"]},
        "task 'a' denyTools: tool pattern 'shell(git push' is not `kind` or `kind(argument)`: write e.g. "
        "`shell(git push)` or `write`",
    ),
    (
        {"id": "a", "title": "t", "allowedTools": ["write"]},
        "task 'a': unknown setting 'allowedTools': did you mean 'allowTools'?",
    ),
]


@pytest.mark.parametrize(("task", "error"), BROKEN_BY_HAND, ids=["bad-pattern", "unknown-setting"])
def test_a_rule_broken_by_a_hand_edit_just_before_the_lock_is_refused_with_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: dict[str, Any], error: str
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(plan_json([{"id": "a", "title": "t"}]))
    edited = plan_json([task])
    acquire = PlanLock.acquire

    def edit_then_acquire(lock: PlanLock) -> None:
        """The plan is edited after the run's first read and check, just before its lock is taken."""
        path.write_text(edited)
        acquire(lock)

    monkeypatch.setattr(PlanLock, "acquire", edit_then_acquire)
    # Shared isolation needs no git repository: a run that let the edit through would go on to start its agents.
    arguments = ["run", "--offline", "--isolation", "shared", "--workdir", str(tmp_path), str(path)]
    result = CliRunner().invoke(main, arguments)

    assert result.stderr.splitlines() == [f"planeteer: error: {error}"]
    assert result.exit_code == 2
    assert path.read_text() == edited
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]  # the lock file went with the lock
