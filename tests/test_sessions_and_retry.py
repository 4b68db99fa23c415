"""Whose sessions are whose, what cleanup may delete, and `planeteer retry`."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from memory_agent import MemoryAgent

from planeteer_action.cli.main import main
from planeteer_action.engine.agent import SessionInfo
from planeteer_action.engine.sessions import SessionScope, classify, cleanup_candidates, sessions_in_scope
from planeteer_action.plan.model import Attempt, Plan
from planeteer_action.plan.session_ids import belongs_to_plan, is_planeteer_session, session_id_for, task_slug
from planeteer_action.plan.store import load_plan, save_plan


def _info(session_id: str, age_days: float = 0, branch: str = "main") -> SessionInfo:
    when = datetime.now(UTC) - timedelta(days=age_days)
    return SessionInfo(session_id, "", when, when, "octo/demo", branch, None)


@dataclass
class StoredSessions(MemoryAgent):
    """Answers a listing as the Copilot CLI filters it: by repository and, when given, exact branch."""

    stored: list[SessionInfo] = field(default_factory=list)
    asked: list[tuple[str | None, str | None]] = field(default_factory=list)

    async def list_sessions(self, repository: str | None, branch: str | None) -> list[SessionInfo]:
        self.asked.append((repository, branch))
        return [i for i in self.stored if i.repository == repository and branch in (None, i.branch)]


def _plan(plan_id: str, holders: dict[str, str]) -> Plan:
    plan = Plan.model_validate({"id": plan_id, "name": plan_id, "tasks": [{"id": t, "title": t} for t in holders]})
    for task_id, session_id in holders.items():
        plan.task(task_id).session_id = session_id
    return plan


def test_session_ids_are_safe_for_the_cli_and_name_their_plan() -> None:
    sid = session_id_for("plan-1732492800000", "Set up: the DB/schema", 3)
    assert sid.startswith("planeteer-") and sid.endswith("-a3")
    assert all(c.isalnum() or c in "-_" for c in sid)
    assert is_planeteer_session(sid) and belongs_to_plan(sid, "plan-1732492800000")
    assert not belongs_to_plan(sid, "another-plan")
    assert task_slug("a b") != task_slug("a-b")  # distinct ids stay distinct
    assert not is_planeteer_session("planeteer-notes") and not is_planeteer_session("my-session")


def test_classification_and_cleanup_spare_held_foreign_and_unknown_sessions() -> None:
    mine = _plan("p1", {"a": session_id_for("p1", "a", 2)})
    other = _plan("p2", {"x": session_id_for("p2", "x", 1)})
    sessions = [
        _info(session_id_for("p1", "a", 2)),  # held
        _info(session_id_for("p1", "a", 1), age_days=10),  # superseded: an orphan
        _info(session_id_for("p2", "x", 1)),  # held by another readable plan
        _info(session_id_for("p3", "y", 1), age_days=30),  # a plan we cannot read
        _info("planeteer-a-persons-own-session", age_days=30),  # looks like planeteer's, is not
        _info("8a7c6f1e-2b3d-4c5e-9f00-112233445566", age_days=30),  # a person's own
    ]
    kinds = {c.info.session_id: c.kind for c in classify(sessions, [mine, other])}
    assert list(kinds.values()) == ["live", "orphan", "live", "unknown-plan", "not-planeteer", "not-planeteer"]
    doomed = [c.info.session_id for c in cleanup_candidates(classify(sessions, [mine, other]))]
    assert doomed == [session_id_for("p1", "a", 1)]
    assert cleanup_candidates(classify(sessions, [mine, other]), older_than=30 * 86400) == []


def test_the_scope_finds_a_plans_sessions_on_its_task_branches_and_others_only_on_the_branch(
    tmp_path: Path,
) -> None:
    task_branch = "planeteer-task/5c1f0e2a/a"
    stored = [
        _info(session_id_for("p1", "a", 1), branch=task_branch),  # an isolated task's: under its task branch
        _info("8a7c6f1e-on-main", branch="main"),  # a person's, on the branch asked about
        _info("8a7c6f1e-elsewhere", branch="feature"),  # a person's, on another branch
        _info(session_id_for("p3", "y", 1), branch=task_branch),  # planeteer's, of a plan not consulted
    ]
    agent = StoredSessions(stored=stored)
    scope = SessionScope(tmp_path, None, "octo/demo", "main")
    found = asyncio.run(sessions_in_scope(agent, scope, [_plan("p1", {})]))
    assert [i.session_id for i in found] == [session_id_for("p1", "a", 1), "8a7c6f1e-on-main"]
    assert agent.asked == [("octo/demo", None)]  # the repository only: the branch is filtered here
    everything = asyncio.run(sessions_in_scope(agent, SessionScope(tmp_path, None, "octo/demo", None), []))
    assert everything == stored


def test_retry_puts_failed_and_interrupted_tasks_back_and_keeps_history(plan_file: Path) -> None:
    plan = load_plan(plan_file)
    setup = plan.task("setup")
    setup.status = "done"
    api = plan.task("api")
    api.status, api.agent_result, api.session_id = "failed", "the model gave up", session_id_for(plan.id, "api", 1)
    api.attempts.append(
        Attempt(number=1, session_id=api.session_id, reason="first start", started_at="t", outcome="failed")
    )
    ui = plan.task("ui")
    ui.status, ui.session_id = "interrupted", session_id_for(plan.id, "ui", 1)
    ui.attempts.append(
        Attempt(number=1, session_id=ui.session_id, reason="first start", started_at="t", outcome="interrupted")
    )
    save_plan(plan, plan_file)

    result = CliRunner().invoke(main, ["retry", str(plan_file), "api", "ui"])
    assert result.exit_code == 0, result.output
    assert "reset to pending: api, ui" in result.stdout
    assert "no longer blocked: e2e" in result.stdout
    again = load_plan(plan_file)
    assert again.task("api").status == "pending" and again.task("api").agent_result is None
    assert again.task("api").attempts[0].outcome == "failed"
    assert again.task("ui").attempts[0].outcome == "superseded"

    refused = CliRunner().invoke(main, ["retry", str(plan_file), "setup"])
    assert refused.exit_code == 2 and "is done, not failed or interrupted" in refused.stderr
    unknown = CliRunner().invoke(main, ["retry", str(plan_file), "nope"])
    assert unknown.exit_code == 2 and "no task 'nope'" in unknown.stderr


def test_status_reports_blocked_tasks_attempts_and_recoveries(plan_file: Path) -> None:
    plan = load_plan(plan_file)
    plan.task("setup").status = "failed"
    save_plan(plan, plan_file)
    result = CliRunner().invoke(main, ["status", "--json", str(plan_file)])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"failed": 1, "blocked": 3}
    assert [t["status"] for t in summary["tasks"]] == ["failed", "blocked", "blocked", "blocked"]
