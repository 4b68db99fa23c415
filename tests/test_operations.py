"""The one status tally, the status summary, and `retry`'s reset: plan operations on their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from planeteer_action.errors import PlaneteerError, PlanLocked
from planeteer_action.plan.lock import PlanLock
from planeteer_action.plan.model import Attempt, Plan
from planeteer_action.plan.operations import (
    count_statuses,
    reset_for_retry,
    retry_tasks,
    status_summary,
    tally,
    unfinished,
)
from planeteer_action.plan.store import load_plan, save_plan


def _plan(statuses: dict[str, str], edges: dict[str, list[str]] | None = None) -> Plan:
    edges = edges or {}
    return Plan.model_validate(
        {
            "id": "p",
            "name": "p",
            "tasks": [{"id": t, "title": t, "status": s, "dependsOn": edges.get(t, [])} for t, s in statuses.items()],
        }
    )


def test_tally_counts_every_shown_status_in_one_order_with_in_progress_its_own() -> None:
    plan = _plan(
        {"a": "done", "b": "failed", "c": "pending", "d": "in_progress", "e": "interrupted", "f": "pending"},
        edges={"c": ["b"]},
    )
    counts = count_statuses(plan)
    assert list(counts) == ["done", "failed", "blocked", "interrupted", "in_progress", "pending"]
    assert counts == {"done": 1, "failed": 1, "blocked": 1, "interrupted": 1, "in_progress": 1, "pending": 1}
    assert unfinished(counts) == 2  # what the next run's recovery picks up
    assert tally([]) == dict.fromkeys(counts, 0)


def test_status_summary_shows_blocked_tasks_and_only_the_statuses_present() -> None:
    plan = _plan({"a": "failed", "b": "pending", "c": "in_progress"}, edges={"b": ["a"]})
    plan.task("a").attempts.append(
        Attempt(
            number=1,
            session_id="s",
            reason="first start",
            started_at="2026-11-20T10:00:00.000Z",
            ended_at="2026-11-20T10:01:30.500Z",
            outcome="failed",
        )
    )
    summary = status_summary(plan)
    assert summary["counts"] == {"failed": 1, "blocked": 1, "in_progress": 1}
    assert [t["status"] for t in summary["tasks"]] == ["failed", "blocked", "in_progress"]
    assert summary["tasks"][0]["durationSeconds"] == 90.5 and not summary["complete"]


def test_retry_resets_closes_the_open_attempt_and_reports_what_it_unblocks() -> None:
    plan = _plan({"a": "interrupted", "b": "pending", "c": "failed"}, edges={"b": ["c"]})
    plan.task("a").attempts.append(
        Attempt(number=1, session_id="s", reason="first start", started_at="t", outcome="interrupted")
    )
    assert reset_for_retry(plan, ["a", "c"]) == {"b"}
    attempt = plan.task("a").attempts[0]
    assert attempt.outcome == "superseded" and attempt.ended_at is not None
    assert [t.status for t in plan.tasks] == ["pending", "pending", "pending"]


def test_a_refused_retry_changes_nothing() -> None:
    plan = _plan({"a": "failed", "b": "done"})
    before = plan.model_dump()
    with pytest.raises(PlaneteerError, match="'b' is done, not failed or interrupted"):
        reset_for_retry(plan, ["a", "b"])
    with pytest.raises(PlaneteerError, match="no task 'x'"):
        reset_for_retry(plan, ["a", "x"])
    assert plan.model_dump() == before


def test_retry_of_a_plan_a_run_owns_is_refused_and_the_file_kept(plan_file: Path) -> None:
    plan = load_plan(plan_file)
    plan.task("setup").status = "failed"
    save_plan(plan, plan_file)
    before = plan_file.read_bytes()
    with PlanLock(plan_file).held(), pytest.raises(PlanLocked):
        retry_tasks(plan_file, ["setup"])
    assert plan_file.read_bytes() == before
    assert retry_tasks(plan_file, ["setup"]) == {"api", "ui", "e2e"}
    assert load_plan(plan_file).task("setup").status == "pending"
