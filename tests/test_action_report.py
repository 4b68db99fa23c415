"""What a workflow run shows, on its own: the grouped log, error annotations, the outputs and the job summary."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from action_env import parse_outputs

from planeteer_action.action.report import (
    MAX_ERROR_ANNOTATIONS,
    MAX_SUMMARY_ROWS,
    ActionLog,
    outputs,
    run_status,
    set_outputs,
    summary_markdown,
)
from planeteer_action.engine.events import RunStarted, TaskActivity, TaskDone, TaskFailed, TaskStarted
from planeteer_action.plan.model import Attempt, Plan


def plan(statuses: dict[str, str], edges: dict[str, list[str]] | None = None, **fields: Any) -> Plan:
    tasks = [
        {"id": task_id, "title": task_id, "status": status, "dependsOn": (edges or {}).get(task_id, [])}
        for task_id, status in statuses.items()
    ]
    return Plan.model_validate({"id": "plan-r", "name": "Nightly", "tasks": tasks, **fields})


def run_url(run_id: int) -> str:
    return f"https://github.example/octo/app/actions/runs/{run_id}"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({"a": "done", "b": "done"}, "complete"),
        ({"a": "done", "b": "interrupted", "c": "failed"}, "interrupted"),
        ({"a": "done", "b": "in_progress"}, "interrupted"),  # a hard kill leaves in_progress behind
        ({"a": "failed", "b": "pending"}, "failed"),
        ({"a": "done", "b": "pending"}, "incomplete"),  # after a clean-up, nothing ran
        ({}, "complete"),
    ],
)
def test_run_status(statuses: dict[str, str], expected: str) -> None:
    assert run_status(plan(statuses)) == expected


def test_outputs_count_each_status_and_map_tasks_to_their_sessions() -> None:
    finished = plan(
        {"a": "done", "b": "failed", "c": "pending", "d": "interrupted", "e": "pending"},
        edges={"c": ["b"]},
    )
    finished.task("a").session_id = "s-a"
    finished.task("d").session_id = "s-d"
    values = outputs(finished, ".planeteer/nightly.json", None)
    assert values == {
        "status": "interrupted",
        "done": "1",
        "failed": "1",
        "blocked": "1",
        "interrupted": "1",
        "session-ids": json.dumps({"a": "s-a", "d": "s-d"}),
        "plan-path": ".planeteer/nightly.json",
        "checkpoint-artifact": "",
    }
    assert outputs(finished, "p.json", "planeteer-x-attempt1-seq0003")["checkpoint-artifact"] == (
        "planeteer-x-attempt1-seq0003"
    )


def test_outputs_reach_the_step_in_the_runners_file_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output_file = tmp_path / "github-output"
    output_file.touch()
    monkeypatch.setenv("GITHUB_OUTPUT", str(output_file))
    set_outputs({"status": "complete", "session-ids": '{"a": "s-a"}', "summary": "two\nlines"})
    assert parse_outputs(output_file.read_text()) == {
        "status": "complete",
        "session-ids": '{"a": "s-a"}',
        "summary": "two\nlines",
    }


def test_a_tasks_lines_are_grouped_when_it_ends_and_run_lines_go_straight_out() -> None:
    stream = io.StringIO()
    log = ActionLog(stream)
    log(RunStarted(plan_id="p", plan_name="Nightly", total=2, concurrency=2, at="T0"))
    log(TaskStarted(task_id="a", session_id="s-a", attempt=1, mode="create", reason="first start", at="T1"))
    log(TaskStarted(task_id="b", session_id="s-b", attempt=1, mode="create", reason="first start", at="T2"))
    log(TaskActivity(task_id="a", text="bash: make", at="T3"))
    assert stream.getvalue().splitlines() == ["T0 run 'Nightly': 2 tasks, up to 2 at once"]
    log(TaskDone(task_id="a", session_id="s-a", summary="built\nand tested", at="T4"))
    lines = stream.getvalue().splitlines()[1:]
    assert lines[0].startswith("T4 task a done: built")
    assert lines[1] == "::group::task a (done)"
    assert [line.split(" ", 1)[0] for line in lines[2:5]] == ["T1", "T3", "T4"]
    assert lines[5] == "::endgroup::"
    assert len(lines) == 6  # b is still running: its lines wait


def test_failed_tasks_are_annotated_up_to_the_limit_then_one_warning(capsys: pytest.CaptureFixture[str]) -> None:
    log = ActionLog(io.StringIO())
    for n in range(MAX_ERROR_ANNOTATIONS + 3):
        log(TaskFailed(task_id=f"t{n}", session_id=None, error=f"error {n}"))
    out = capsys.readouterr().out.splitlines()
    errors = [line for line in out if line.startswith("::error")]
    assert len(errors) == MAX_ERROR_ANNOTATIONS
    assert errors[0].startswith("::error title=Task t0 failed") and errors[0].endswith("::error 0")
    assert [line for line in out if line.startswith("::warning")] == [
        "::warning::more tasks failed than the workflow page shows annotations for: see the job summary"
    ]


def test_the_summary_heads_with_the_status_and_lists_every_task() -> None:
    nightly = plan({"build": "done", "test": "failed", "deploy": "pending"}, edges={"deploy": ["test"]})
    nightly.task("build").session_id = "s-build"
    summary = summary_markdown(nightly, {}, ["no state-key: checkpoints are not encrypted"], run_url)
    lines = summary.splitlines()
    assert lines[0] == "## ❌ Planeteer: Nightly — failed"
    assert "3 tasks: 1 done, 1 failed, 1 blocked." in lines
    assert "> [!WARNING]\n> no state-key: checkpoints are not encrypted" in summary
    assert "| build | done |  | `s-build` |  |" in lines
    assert "| deploy | blocked |  | `` |  |" in lines


def test_the_summary_says_what_was_restored_and_recovered() -> None:
    resumed = plan(
        {"a": "done", "b": "done"},
        execution={"recoveries": [{"at": "T", "choice": "resume", "resumed": ["a"], "restarted": ["b"]}]},
    )
    restored = {
        "name": "planeteer-nightly-attempt1-seq0004",
        "origin": "artifacts",
        "run_id": 42,
        "attempt": 1,
        "sequence": 4,
        "sessions": ["s-a", "s-b"],
        "changed_paths": ["src/app.py"],
    }
    summary = summary_markdown(resumed, {"restored": restored, "recovered": True, "checkpoint": "cp-5"}, [], run_url)
    assert summary.startswith("## ✅ Planeteer: Nightly — complete\n")
    assert (
        "**Restored** checkpoint `planeteer-nightly-attempt1-seq0004` from the artifacts of "
        f"[run 42]({run_url(42)}) attempt 1 (save 4): 2 session(s), 1 changed file(s) put back."
    ) in summary
    assert "**Recovery** (resume): resumed a in their own sessions; started fresh b;" in summary
    assert "**Checkpoint:** `cp-5`" in summary
    without_recovery = summary_markdown(resumed, {}, [], run_url)
    assert "**Recovery**" not in without_recovery and "**Restored**" not in without_recovery


def test_the_summary_adds_durations_keeps_cells_in_one_row_and_caps_rows() -> None:
    many = plan({f"t{n}": "done" for n in range(MAX_SUMMARY_ROWS + 7)})
    first = many.task("t0")
    first.id = "t0|pipe"
    first.attempts = [
        Attempt.model_validate(
            {"number": 1, "sessionId": "s1", "reason": "first\nstart", "outcome": "interrupted",
             "startedAt": "2026-01-01T00:00:00.000Z", "endedAt": "2026-01-01T00:01:30.000Z"}
        ),
        Attempt.model_validate(
            {"number": 2, "sessionId": "s1", "reason": "resume", "outcome": "done",
             "startedAt": "2026-01-01T01:00:00.000Z", "endedAt": "2026-01-01T01:00:30.000Z"}
        ),
    ]  # fmt: skip
    lines = summary_markdown(many, {}, [], run_url).splitlines()
    row = next(line for line in lines if line.startswith("| t0"))
    assert row.startswith("| t0\\|pipe | done | 2m")
    assert row.endswith("| #1 first start: interrupted; #2 resume: done |")
    assert sum(1 for line in lines if line.startswith("| t")) == MAX_SUMMARY_ROWS
    assert "_7 more tasks not shown: `planeteer status` lists all._" in lines
