"""Task ids and recorded session ids that planeteer could not use are refused before anything runs.

A task id is written on a line of its own in every prompt and becomes part of the task's session ids;
a task left in progress or interrupted is resumed in the session its `sessionId` names, so that must be
a session planeteer made for that very task.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from planeteer_action.cli.main import main
from planeteer_action.plan.session_ids import belongs_to_plan, session_id_for
from planeteer_action.plan.store import load_plan

PLAN_ID = "plan-ids"


def _plan(*tasks: dict[str, Any]) -> str:
    return json.dumps({"id": PLAN_ID, "name": "ids", "tasks": list(tasks)}, indent=2)


def _in_progress(session_id: str, status: str = "in_progress") -> dict[str, Any]:
    return {"id": "api", "title": "API", "status": status, "sessionId": session_id}


_COLLIDING = "x-" + hashlib.sha256(b"X").hexdigest()[:6]

BAD_PLANS = {
    "session-id-not-an-id": (
        _plan(_in_progress("../../etc/passwd")),
        r"task 'api' is in_progress in session '../../etc/passwd', which is not a session planeteer made for"
        r" it \(planeteer-[0-9a-f]{8}-api-a<attempt>\): restore the sessionId planeteer wrote, or remove it",
    ),
    "session-id-of-a-person": (
        _plan(_in_progress("my-own-notes", "interrupted")),
        r"task 'api' is interrupted in session 'my-own-notes', which is not a session planeteer made for it",
    ),
    "session-id-of-another-task": (
        _plan(_in_progress(session_id_for(PLAN_ID, "ui", 1)), {"id": "ui", "title": "UI"}),
        r"task 'api' is in_progress in session 'planeteer-[0-9a-f]{8}-ui-a1', which is not a session planeteer",
    ),
    "session-id-of-another-plan": (
        _plan(_in_progress(session_id_for("another-plan", "api", 1))),
        r"task 'api' is in_progress in session 'planeteer-[0-9a-f]{8}-api-a1', which is not a session planeteer",
    ),
    "empty-task-id": (
        _plan({"id": "a", "title": "A"}, {"id": "", "title": "Nameless"}),
        r"tasks\[1\] \('Nameless'\): the task id is empty: give every task a unique, non-empty id",
    ),
    "blank-task-id": (
        _plan({"id": "  ", "title": "Blank"}),
        r"tasks\[0\] \('Blank'\): the task id '  ' has leading or trailing whitespace: remove it",
    ),
    "multi-line-task-id": (
        _plan({"id": "a\nb", "title": "Two lines"}),
        r"tasks\[0\] \('Two lines'\): the task id 'a\\nb' contains a control character: use one line of text",
    ),
    "ids-sharing-session-ids": (
        _plan({"id": "X", "title": "Big X"}, {"id": _COLLIDING, "title": "Other"}),
        rf"task ids 'X' and '{_COLLIDING}' would share session ids \(planeteer-[0-9a-f]{{8}}-{_COLLIDING}-a<attempt>\):"
        r" rename one of them",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_PLANS))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_unusable_ids_are_refused_with_one_line_and_exit_2(tmp_path: Path, name: str, command: str) -> None:
    text, pattern = BAD_PLANS[name]
    path = tmp_path / "plan.json"
    path.write_text(text)
    result = CliRunner().invoke(main, [command, str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"planeteer: error: {path}: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert path.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


@pytest.mark.parametrize("status", ["in_progress", "interrupted", "done", "failed", "pending"])
def test_a_session_planeteer_made_for_the_task_passes(tmp_path: Path, status: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(_plan(_in_progress(session_id_for(PLAN_ID, "api", 3), status)))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_every_task_id_validation_accepts_gets_distinct_session_ids_planeteer_owns(tmp_path: Path) -> None:
    ids = ["api", "API", "Api Client", "x/y", "-", "_", "ü", "数据库", "a" * 41, "a" * 40, "x-a1", "a b", "é-e"]
    path = tmp_path / "plan.json"
    path.write_text(_plan(*({"id": task_id, "title": task_id} for task_id in ids)))
    plan = load_plan(path)
    sessions = {session_id_for(plan.id, task.id, 1) for task in plan.tasks}
    assert len(sessions) == len(ids)
    assert all(belongs_to_plan(session_id, plan.id) for session_id in sessions)
