"""Recovery decisions on the in-memory agent: what is found, and what each choice changes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from memory_agent import MemoryAgent

from planeteer_action.engine.agent import AgentError, SessionNotFound
from planeteer_action.engine.recovery import apply_choice, delete_quietly, inspect
from planeteer_action.plan.model import Attempt, AttemptOutcome, Execution, Plan
from planeteer_action.plan.session_ids import session_id_for

PLAN_ID = "plan-r"


def _crashed_plan() -> tuple[Plan, MemoryAgent]:
    """done: a; crashed mid-turn: b (session exists); never started a turn: c; superseded orphan of d."""
    plan = Plan.model_validate(
        {
            "id": PLAN_ID,
            "name": "r",
            "tasks": [
                {"id": "a", "title": "a", "status": "done"},
                {"id": "b", "title": "b", "status": "in_progress"},
                {"id": "c", "title": "c", "status": "interrupted"},
                {"id": "d", "title": "d", "status": "pending", "dependsOn": ["b"]},
            ],
        }
    )
    plan.execution = Execution()
    agent = MemoryAgent()
    for task_id in ("a", "b", "c"):
        sid = session_id_for(PLAN_ID, task_id, 1)
        task = plan.task(task_id)
        task.session_id = sid
        outcomes: dict[str, AttemptOutcome] = {"a": "done", "b": "running", "c": "interrupted"}
        outcome = outcomes[task_id]
        task.attempts.append(Attempt(number=1, session_id=sid, reason="first start", started_at="t", outcome=outcome))
        if task_id != "c":
            agent.sessions[sid] = ["prompt"]
    agent.sessions[session_id_for(PLAN_ID, "d", 1)] = ["an abandoned earlier attempt"]
    agent.add_foreign_session("a-persons-own-session")
    agent.sessions[session_id_for("another-plan", "x", 1)] = ["someone else's plan"]
    return plan, agent


def test_inspect_classifies_tasks_and_finds_only_this_plans_orphans() -> None:
    plan, agent = _crashed_plan()
    report = asyncio.run(inspect(plan, agent, "octo/demo", "main"))
    assert [(u.task_id, u.state) for u in report.unfinished] == [("b", "resumable"), ("c", "lost")]
    assert [o.session_id for o in report.orphans] == [session_id_for(PLAN_ID, "d", 1)]


def test_resume_keeps_resumable_sessions_and_restarts_lost_ones() -> None:
    plan, agent = _crashed_plan()
    report = asyncio.run(inspect(plan, agent, "octo/demo", "main"))
    record = asyncio.run(apply_choice(plan, report, "resume", agent))
    assert plan.task("b").status == "interrupted"
    assert plan.task("b").session_id == session_id_for(PLAN_ID, "b", 1)
    assert plan.task("b").attempts[-1].outcome == "interrupted"
    assert plan.task("c").status == "pending" and plan.task("c").attempts[-1].outcome == "lost"
    assert plan.task("a").status == "done"
    assert (record.resumed, record.restarted, record.deleted_sessions) == (["b"], ["c"], [])
    assert plan.execution is not None and plan.execution.recoveries == [record]
    assert len(agent.sessions) == 5  # nothing deleted


def test_fresh_supersedes_sessions_but_keeps_them() -> None:
    plan, agent = _crashed_plan()
    report = asyncio.run(inspect(plan, agent, "octo/demo", "main"))
    record = asyncio.run(apply_choice(plan, report, "fresh", agent))
    assert plan.task("b").status == "pending"
    assert plan.task("b").attempts[-1].outcome == "superseded"
    assert record.restarted == ["b", "c"]
    assert session_id_for(PLAN_ID, "b", 1) in agent.sessions


def test_cleanup_deletes_only_this_plans_orphans_and_superseded_sessions() -> None:
    plan, agent = _crashed_plan()
    report = asyncio.run(inspect(plan, agent, "octo/demo", "main"))
    record = asyncio.run(apply_choice(plan, report, "cleanup", agent))
    assert sorted(record.deleted_sessions) == sorted([session_id_for(PLAN_ID, "d", 1), session_id_for(PLAN_ID, "b", 1)])
    assert sorted(agent.sessions) == sorted(
        [session_id_for(PLAN_ID, "a", 1), "a-persons-own-session", session_id_for("another-plan", "x", 1)]
    )
    b = plan.task("b")
    assert b.status == "pending" and b.session_id is None and b.attempts[-1].session_deleted
    assert plan.task("a").status == "done"


@dataclass
class _DeleteFails(MemoryAgent):
    """Every delete fails with `delete_error`, as a runtime's would."""

    delete_error: AgentError = field(default_factory=lambda: AgentError("no error configured"))

    async def delete_session(self, session_id: str) -> None:
        raise self.delete_error


def test_a_session_already_gone_counts_as_deleted_by_its_type_not_its_wording() -> None:
    gone = SessionNotFound("Session s is no longer in this Copilot home")
    asyncio.run(delete_quietly(_DeleteFails(delete_error=gone), "s"))
    with pytest.raises(SessionNotFound):
        asyncio.run(MemoryAgent().delete_session("never-made"))


def test_a_failed_delete_is_raised_even_when_its_text_says_not_found() -> None:
    failure = AgentError("Deleting session s failed: the Copilot CLI was not found")
    with pytest.raises(AgentError, match="CLI was not found"):
        asyncio.run(delete_quietly(_DeleteFails(delete_error=failure), "s"))


def test_nothing_to_decide_on_a_clean_plan() -> None:
    plan = Plan.model_validate({"id": PLAN_ID, "name": "r", "tasks": [{"id": "a", "title": "a"}]})
    agent = MemoryAgent()
    agent.add_foreign_session("mine")
    assert not asyncio.run(inspect(plan, agent, None, None)).needs_decision
