"""`planeteer sessions cleanup` against a run of the same plan: it holds the plan's lock or is refused.

The agent is the in-memory one, put in at the seam the commands start the Copilot runtime through; these
tests are about the plan file and the lock, not about sessions (those run the real CLI elsewhere).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from memory_agent import MemoryAgent

import planeteer_action.runner
from planeteer_action.cli.main import main
from planeteer_action.engine.agent import SessionInfo
from planeteer_action.engine.session_ids import session_id_for
from planeteer_action.errors import PlanLocked
from planeteer_action.plan.lock import PlanLock
from planeteer_action.plan.model import Attempt
from planeteer_action.plan.store import load_plan, save_plan

PLAN_ID = "plan-1732492800000"
OLD = session_id_for(PLAN_ID, "api", 1)  # superseded by attempt 2: an orphan
HELD = session_id_for(PLAN_ID, "api", 2)
STARTED_BY_THE_RUN = session_id_for(PLAN_ID, "api", 3)


class ListingAgent(MemoryAgent):
    """Calls `during_listing` while cleanup lists sessions, the moment a run could slip in."""

    during_listing: Callable[[], None] = staticmethod(lambda: None)

    async def list_sessions(self, repository: str | None, branch: str | None) -> list[SessionInfo]:
        self.during_listing()
        return await super().list_sessions(repository, branch)


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> ListingAgent:
    memory = ListingAgent(repository=None, branch=None)

    @contextlib.asynccontextmanager
    async def runtime(copilot_home: Path | None, **_: object) -> AsyncIterator[MemoryAgent]:
        yield memory

    monkeypatch.setattr(planeteer_action.runner, "copilot_runtime", runtime)
    return memory


def _plan_with_an_orphan(plan_file: Path, agent: MemoryAgent) -> None:
    plan = load_plan(plan_file)
    api = plan.task("api")
    api.status, api.session_id = "interrupted", HELD
    api.attempts = [
        Attempt(number=1, session_id=OLD, reason="first start", started_at="t", outcome="superseded"),
        Attempt(number=2, session_id=HELD, reason="fresh start (chosen)", started_at="t", outcome="interrupted"),
    ]
    save_plan(plan, plan_file)
    agent.sessions.update({OLD: ["old"], HELD: ["held"]})


def _cleanup(workdir: Path) -> object:
    return CliRunner().invoke(main, ["sessions", "cleanup", "--yes", "--workdir", str(workdir)])


def test_cleanup_is_refused_while_a_run_owns_the_plan_and_deletes_nothing(plan_file: Path, agent: ListingAgent) -> None:
    _plan_with_an_orphan(plan_file, agent)
    before = plan_file.read_bytes()
    with PlanLock(plan_file).held():  # a run owns the plan
        result = _cleanup(plan_file.parent.parent)
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and "is being run by pid" in lines[0]
    assert set(agent.sessions) == {OLD, HELD}, "nothing may be deleted while a run owns the plan"
    assert plan_file.read_bytes() == before


def test_a_run_starting_during_cleanup_is_kept_out_and_nothing_stale_is_saved(
    plan_file: Path, agent: ListingAgent
) -> None:
    _plan_with_an_orphan(plan_file, agent)
    runs: list[str] = []

    def a_run_starts() -> None:
        """A run takes the lock, starts attempt 3 (write-ahead, then the session), finishes the task."""
        lock = PlanLock(plan_file)
        try:
            lock.acquire()
        except PlanLocked:
            runs.append("refused")
            return
        try:
            plan = load_plan(plan_file)
            api = plan.task("api")
            api.attempts.append(
                Attempt(number=3, session_id=STARTED_BY_THE_RUN, reason="resumed", started_at="t", outcome="done")
            )
            api.status, api.session_id = "done", STARTED_BY_THE_RUN
            save_plan(plan, plan_file)
            agent.sessions[STARTED_BY_THE_RUN] = ["the run's turn"]
            runs.append("ran")
        finally:
            lock.release()

    agent.during_listing = a_run_starts
    result = _cleanup(plan_file.parent.parent)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert runs == ["refused"], "cleanup must hold the plan's lock while it decides and records"
    assert set(agent.sessions) == {HELD}
    saved = load_plan(plan_file)
    assert saved.task("api").status == "interrupted" and saved.task("api").session_id == HELD
    assert [a.session_deleted for a in saved.task("api").attempts] == [True, False]
    # Once cleanup is over, the run gets the plan as cleanup left it, and its result stays.
    a_run_starts()
    assert runs == ["refused", "ran"] and load_plan(plan_file).task("api").status == "done"
