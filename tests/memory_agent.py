"""An in-memory agent behind the engine's own interface, for scheduler and recovery unit tests.

It never stands in for the Copilot SDK in a test that claims to test sessions: those run the real CLI.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from planeteer_action.engine.agent import (
    AgentError,
    SessionAlreadyExists,
    SessionInfo,
    SessionNotFound,
    TurnRequest,
    TurnResult,
)
from planeteer_action.engine.prompts import TASK_MARKER


@dataclass
class Behaviour:
    seconds: float = 0.0
    fail: str | None = None
    hang: bool = False
    # Tool requests the rules deny during the turn: each is reported through the request's `on_denied`.
    denied: tuple[str, ...] = ()


@dataclass
class MemoryAgent:
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    sessions: dict[str, list[str]] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (event, task id, session id)
    running: int = 0
    peak: int = 0
    repository: str | None = "octo/demo"
    branch: str | None = "main"
    created_at: dict[str, datetime] = field(default_factory=dict)
    requests: list[TurnRequest] = field(default_factory=list)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def run_turn(self, request: TurnRequest) -> TurnResult:
        task_id = request.prompt.split(TASK_MARKER, 1)[1].split()[0]
        if request.mode == "create":
            if request.session_id in self.sessions:
                raise SessionAlreadyExists(f"session {request.session_id} already exists")
            self.sessions[request.session_id] = []
            self.created_at[request.session_id] = datetime.now(UTC)
        elif request.session_id not in self.sessions:
            raise SessionNotFound(f"session {request.session_id} not found")
        self.sessions[request.session_id].append(request.prompt)
        self.requests.append(request)
        self.log.append(("start", task_id, request.session_id))
        behaviour = self.behaviours.get(task_id, Behaviour())
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            request.on_activity("working")
            for description in behaviour.denied:
                request.on_denied(description)
            if behaviour.hang:
                await asyncio.Event().wait()
            await asyncio.sleep(behaviour.seconds)
            if behaviour.fail:
                raise AgentError(behaviour.fail)
        finally:
            self.running -= 1
            self.log.append(("end", task_id, request.session_id))
        return TurnResult(summary=f"did {task_id}")

    async def get_session(self, session_id: str) -> SessionInfo | None:
        if session_id not in self.sessions:
            return None
        return self._info(session_id)

    async def list_sessions(self, repository: str | None, branch: str | None) -> list[SessionInfo]:
        return [self._info(s) for s in self.sessions]

    async def delete_session(self, session_id: str) -> None:
        if session_id not in self.sessions:
            raise SessionNotFound(f"Session {session_id} does not exist, so there is nothing to delete")
        del self.sessions[session_id]

    async def user_messages(self, session_id: str) -> list[str] | None:
        return list(self.sessions[session_id]) if session_id in self.sessions else None

    def add_foreign_session(self, session_id: str) -> None:
        self.sessions[session_id] = ["a person's own conversation"]
        self.created_at[session_id] = datetime.now(UTC)

    def _info(self, session_id: str) -> SessionInfo:
        created = self.created_at.get(session_id, datetime.now(UTC))
        return SessionInfo(
            session_id=session_id,
            summary="",
            start_time=created,
            modified_time=created,
            repository=self.repository,
            branch=self.branch,
            working_directory=None,
        )
