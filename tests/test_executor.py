"""The scheduler, on the in-memory agent: order, parallelism, failures, interruption, write-ahead."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Collection
from pathlib import Path

import pytest
from memory_agent import Behaviour, MemoryAgent

from planeteer_action.engine.agent import TurnRequest, TurnResult
from planeteer_action.engine.events import Event, TaskBlocked, TaskInterrupted, TaskStarted
from planeteer_action.engine.executor import Executor, ExecutorOptions
from planeteer_action.engine.prompts import continuation_prompt, task_prompt
from planeteer_action.errors import PlanSaveFailed
from planeteer_action.plan.model import Attempt, Plan
from planeteer_action.plan.session_ids import session_id_for
from planeteer_action.plan.store import BackgroundPlanWriter, load_plan, plan_json, save_plan


def _plan(edges: dict[str, list[str]]) -> Plan:
    return Plan.model_validate(
        {
            "id": "plan-x",
            "name": "x",
            "tasks": [{"id": t, "title": t, "dependsOn": d} for t, d in edges.items()],
        }
    )


def _run(plan: Plan, agent: MemoryAgent, concurrency: int = 4, path: Path | None = None) -> tuple[str, list[Event]]:
    events: list[Event] = []
    saver = BackgroundPlanWriter(path) if path else NoSaves()
    executor = Executor(plan, agent, ExecutorOptions(Path("."), concurrency), saver, [events.append])
    result = asyncio.run(executor.run())
    saver.close()
    return result.status, events


class NoSaves:
    async def save(self, plan: Plan, changed: Collection[str] | None) -> None:
        return None

    def save_blocking(self, plan: Plan, changed: Collection[str] | None) -> None:
        return None

    def close(self) -> None:
        return None


DIAMOND = {"setup": [], "api": ["setup"], "ui": ["setup"], "e2e": ["api", "ui"]}


def test_diamond_runs_in_dependency_order() -> None:
    agent = MemoryAgent(behaviours={"api": Behaviour(0.02), "ui": Behaviour(0.01)})
    plan = _plan(DIAMOND)
    status, _ = _run(plan, agent)
    assert status == "complete"
    order = [(kind, task) for kind, task, _ in agent.log]
    assert order.index(("end", "setup")) < order.index(("start", "api"))
    assert order.index(("end", "setup")) < order.index(("start", "ui"))
    assert order.index(("end", "api")) < order.index(("start", "e2e"))
    assert order.index(("end", "ui")) < order.index(("start", "e2e"))
    assert agent.peak == 2
    assert all(t.status == "done" and t.agent_result == f"did {t.id}" for t in plan.tasks)
    assert plan.task("api").session_id == session_id_for("plan-x", "api", 1)


def test_a_task_starts_when_its_own_dependencies_are_done_not_a_batch() -> None:
    agent = MemoryAgent(behaviours={"slow": Behaviour(0.3), "quick": Behaviour(0.01)})
    _run(_plan({"slow": [], "quick": [], "after-quick": ["quick"]}), agent)
    order = [(kind, task) for kind, task, _ in agent.log]
    assert order.index(("start", "after-quick")) < order.index(("end", "slow"))


def test_concurrency_limit_holds() -> None:
    agent = MemoryAgent(behaviours={f"t{i}": Behaviour(0.02) for i in range(10)})
    status, _ = _run(_plan({f"t{i}": [] for i in range(10)}), agent, concurrency=3)
    assert status == "complete"
    assert agent.peak == 3


def test_failure_blocks_only_its_dependents() -> None:
    agent = MemoryAgent(behaviours={"api": Behaviour(fail="the model gave up")})
    plan = _plan({**DIAMOND, "docs": ["setup"]})
    status, events = _run(plan, agent)
    assert status == "failed"
    assert plan.task("api").status == "failed"
    assert plan.task("api").agent_result == "the model gave up"
    assert plan.task("api").attempts[0].outcome == "failed"
    assert plan.task("ui").status == "done" and plan.task("docs").status == "done"
    assert plan.task("e2e").status == "pending"
    assert [e.task_id for e in events if isinstance(e, TaskBlocked)] == ["e2e"]
    assert ("start", "e2e") not in [(k, t) for k, t, _ in agent.log]


def test_session_id_is_saved_before_the_session_is_created(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    plan = _plan(DIAMOND)
    save_plan(plan, path)
    seen: list[str | None] = []

    class Checking(MemoryAgent):
        async def run_turn(self, request: TurnRequest) -> TurnResult:
            on_disk = json.loads(path.read_text())
            task = next(t for t in on_disk["tasks"] if t.get("sessionId") == request.session_id)
            seen.append(task["status"])
            return await super().run_turn(request)

    status, _ = _run(plan, Checking(), path=path)
    assert status == "complete"
    assert seen == ["in_progress"] * 4
    assert all(t.status == "done" for t in load_plan(path).tasks)


def test_interrupt_marks_running_tasks_interrupted_and_keeps_sessions(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    plan = _plan({"a": [], "b": [], "c": ["a"]})
    agent = MemoryAgent(behaviours={"a": Behaviour(hang=True), "b": Behaviour(hang=True)})
    events: list[Event] = []
    executor = Executor(plan, agent, ExecutorOptions(Path(".")), BackgroundPlanWriter(path), [events.append])

    async def go() -> str:
        running = asyncio.create_task(executor.run())
        while len([e for e in events if isinstance(e, TaskStarted)]) < 2:
            await asyncio.sleep(0.01)
        executor.interrupt()
        return (await running).status

    assert asyncio.run(go()) == "interrupted"
    saved = load_plan(path)
    for task_id in ("a", "b"):
        task = saved.task(task_id)
        assert task.status == "interrupted"
        assert task.session_id == session_id_for("plan-x", task_id, 1)
        assert task.attempts[-1].outcome == "interrupted"
    assert saved.task("c").status == "pending" and not saved.task("c").attempts
    assert {e.task_id for e in events if isinstance(e, TaskInterrupted)} == {"a", "b"}


def test_interrupted_task_resumes_its_own_session_with_a_continuation_prompt() -> None:
    plan = _plan({"a": [], "b": ["a"]})
    agent = MemoryAgent()
    sid = session_id_for("plan-x", "a", 1)
    agent.sessions[sid] = [task_prompt(plan, plan.task("a"))]
    task = plan.task("a")
    task.status, task.session_id = "interrupted", sid
    task.attempts.append(Attempt(number=1, session_id=sid, reason="first start", started_at="t", outcome="interrupted"))
    status, events = _run(plan, agent)
    assert status == "complete"
    assert len(agent.sessions[sid]) == 2
    assert "previous turn on this task was interrupted" in agent.sessions[sid][1]
    started = [e for e in events if isinstance(e, TaskStarted) and e.task_id == "a"]
    assert [(e.mode, e.session_id, e.attempt) for e in started] == [("resume", sid, 1)]
    assert [a.reason for a in task.attempts] == ["first start", "resumed after interruption"]


@pytest.mark.parametrize("stored", ["nothing", "a continuation only"])
def test_a_session_that_never_got_its_task_prompt_is_resumed_with_the_full_prompt(stored: str) -> None:
    # Interrupted between creating the session and its first prompt arriving: the session exists, but a
    # continuation alone would leave the agent no description, plan context or dependency results.
    plan = _plan({"a": [], "b": ["a"]})
    plan.task("a").status, plan.task("a").agent_result = "done", "a's result"
    task = plan.task("b")
    sid = session_id_for("plan-x", "b", 1)
    task.status, task.session_id = "interrupted", sid
    task.attempts.append(Attempt(number=1, session_id=sid, reason="first start", started_at="t", outcome="interrupted"))
    agent = MemoryAgent()
    agent.sessions[sid] = [] if stored == "nothing" else [continuation_prompt(task)]
    status, events = _run(plan, agent)
    assert status == "complete"
    sent = agent.sessions[sid][-1]
    assert sent == task_prompt(plan, task) and "a's result" in sent
    started = [e for e in events if isinstance(e, TaskStarted)]
    assert [(e.mode, e.session_id, e.attempt) for e in started] == [("resume", sid, 1)]
    assert task.attempts[-1].reason == (
        "resumed after interruption, with the full task prompt (it had not been delivered)"
    )


def test_lost_session_falls_back_to_a_fresh_attempt() -> None:
    plan = _plan({"a": []})
    agent = MemoryAgent()
    task = plan.task("a")
    old = session_id_for("plan-x", "a", 1)
    task.status, task.session_id = "interrupted", old
    task.attempts.append(Attempt(number=1, session_id=old, reason="first start", started_at="t", outcome="interrupted"))
    status, _ = _run(plan, agent)
    assert status == "complete"
    assert [(a.session_id, a.outcome) for a in task.attempts] == [
        (old, "interrupted"),
        (old, "lost"),
        (session_id_for("plan-x", "a", 2), "done"),
    ]
    assert task.attempts[-1].reason == "fresh start: previous session lost"


def test_finished_tasks_are_never_run_again() -> None:
    plan = _plan(DIAMOND)
    plan.task("setup").status = "done"
    plan.task("api").status = "done"
    agent = MemoryAgent()
    _run(plan, agent)
    assert {t for _, t, _ in agent.log} == {"ui", "e2e"}


def test_incremental_saves_write_exactly_what_a_full_save_writes(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    plan = _plan({**DIAMOND, "docs": ["api"]})
    agent = MemoryAgent(behaviours={"ui": Behaviour(fail="no")})
    _run(plan, agent, path=path)
    incremental = path.read_bytes(), path.with_suffix(".md").read_bytes()
    save_plan(load_plan(path), path)
    assert (path.read_bytes(), path.with_suffix(".md").read_bytes()) == incremental
    assert plan_json(plan) == incremental[0]


def test_the_longest_chain_starts_first_when_slots_are_scarce() -> None:
    # "short" comes first in the plan, but "long" heads a chain of three: with one slot it must go first.
    agent = MemoryAgent()
    _run(_plan({"short": [], "long": [], "long-2": ["long"], "long-3": ["long-2"]}), agent, concurrency=1)
    starts = [task for kind, task, _ in agent.log if kind == "start"]
    assert starts[0] == "long"


def test_a_plan_that_cannot_be_saved_stops_the_run_with_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "plans"
    folder.mkdir()
    path = folder / "plan.json"
    plan = _plan({"a": [], "b": ["a"]})
    save_plan(plan, path)
    shutil.rmtree(folder)  # the disk went away: every save fails (chmod would not stop root)
    agent = MemoryAgent()
    with pytest.raises(PlanSaveFailed, match=rf"^cannot save {re.escape(str(path))}: No such file or directory"):
        _run(plan, agent, path=path)
    assert agent.log == []  # write-ahead: no session was started whose id could not be saved
