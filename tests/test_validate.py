"""Bad plans: one clear line each, exit 2, and the file left exactly as it was."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from planeteer_action.cli.main import main


def _plan(tasks: list[dict[str, object]], **extra: object) -> str:
    return json.dumps({"id": "p", "name": "demo", "tasks": tasks, **extra}, indent=2)


BAD_PLANS = {
    "malformed": (
        '{"id": "p",\n  "name": "demo"\n  "tasks": []}',
        r":3:3: malformed JSON \(Expecting ',' delimiter\)",
    ),
    "not-an-object": ("[1, 2]", r"a plan is a JSON object with id, name and tasks, not an array"),
    "missing-tasks": ('{"id": "p", "name": "demo"}', r"tasks: required field is missing"),
    "missing-title": (_plan([{"id": "a"}]), r"tasks\[0\] \(task 'a'\)\.title: required field is missing"),
    "wrong-type": (
        _plan([{"id": "a", "title": "A", "dependsOn": "b"}]),
        r"tasks\[0\] \(task 'a'\)\.dependsOn: expected an array, got a string",
    ),
    "bad-status": (
        _plan([{"id": "a", "title": "A", "status": "later"}]),
        r"tasks\[0\] \(task 'a'\)\.status: 'later' is not allowed: use one of",
    ),
    "duplicate": (
        _plan([{"id": "a", "title": "A"}, {"id": "a", "title": "B"}]),
        r"duplicate task id 'a' \(2 tasks share it\)",
    ),
    "unknown-dependency": (
        _plan([{"id": "a", "title": "A", "dependsOn": ["ghost"]}]),
        r"task 'a' depends on unknown task 'ghost'",
    ),
    "cycle": (
        _plan(
            [
                {"id": "a", "title": "A", "dependsOn": ["c"]},
                {"id": "b", "title": "B", "dependsOn": ["a"]},
                {"id": "c", "title": "C", "dependsOn": ["b"]},
            ]
        ),
        r"dependency cycle a -> c -> b -> a",
    ),
    "self-cycle": (_plan([{"id": "a", "title": "A", "dependsOn": ["a"]}]), r"dependency cycle a -> a"),
    "huge-integer": (
        '{"id": "p", "name": "demo",\n "tasks": [], "size": ' + "7" * 5000 + "}",
        r":2:23: number too large \(5000 characters; JavaScript reads it as Infinity\)",
    ),
    "overflowing-number": ('{"id": "p", "name": "demo", "tasks": [], "x": 1e400}', r":1:47: number too large"),
    "not-a-json-number": ('{"id": "p", "name": "demo", "tasks": [], "x": NaN}', r":1:47: NaN is not JSON"),
    "nested-100k-deep": (
        '{"id": "p", "name": "demo", "tasks": [], "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        r": arrays or objects nested more than 254 levels deep: flatten that value",
    ),
    "nested-too-deep-to-save": (
        _plan([{"id": "a", "title": "A", "notes": json.loads("[" * 300 + "]" * 300)}]),
        r": arrays or objects nested more than 254 levels deep",
    ),
    "lone-surrogate": (_plan([{"id": "a", "title": "\ud800"}]), r": cannot be saved again as it is \(str is not"),
}


@pytest.mark.parametrize("name", sorted(BAD_PLANS))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_plan_is_refused_with_one_line_and_exit_2(tmp_path: Path, name: str, command: str) -> None:
    text, pattern = BAD_PLANS[name]
    path = tmp_path / "plan.json"
    path.write_text(text)
    result = CliRunner().invoke(main, [command, str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 1
    assert lines[0].startswith(f"planeteer: error: {path}")
    assert re.search(pattern, lines[0]), lines[0]
    assert path.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "no such plan file: check the path" in result.stderr


def test_valid_plan_passes(plan_file: Path) -> None:
    (plan_file.parent.parent / ".github" / "skills" / "python").mkdir(parents=True)  # the plan's enabled skill
    result = CliRunner().invoke(main, ["validate", "--json", "--workdir", str(plan_file.parent.parent), str(plan_file)])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"valid": True, "planId": "plan-1732492800000", "tasks": 4}
