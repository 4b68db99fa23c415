"""The engine's only view of an agent runtime.

The executor and recovery talk to this small interface; `copilot.agent.CopilotAgent` implements it on the
real Copilot SDK, and unit tests can implement it in memory. Nothing outside `planeteer_action/copilot/` imports
the SDK, and its failures reach the engine as these types (e.g. `SessionNotFound`), never as text to match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from planeteer_action.engine.rules import SessionRules
from planeteer_action.errors import EXIT_TASKS_FAILED, PlaneteerError

TurnMode = Literal["create", "resume"]


@dataclass(frozen=True)
class TurnRequest:
    """One prompt sent to one task's session.

    `mode="create"` starts a new session under `session_id` (which the plan has already saved);
    `mode="resume"` reattaches to an existing session and continues its conversation.
    """

    session_id: str
    session_name: str
    prompt: str
    mode: TurnMode
    working_directory: Path
    quiet_timeout: float
    on_activity: Callable[[str], None]
    rules: SessionRules = field(default_factory=SessionRules)
    on_denied: Callable[[str], None] = lambda description: None
    """Told of each tool request the rules denied (it never ran), e.g. `shell(git push origin main)`."""


@dataclass(frozen=True)
class TurnResult:
    summary: str


@dataclass(frozen=True)
class SessionInfo:
    """What the runtime knows about one stored session."""

    session_id: str
    summary: str
    start_time: datetime | None
    modified_time: datetime | None
    repository: str | None
    branch: str | None
    working_directory: str | None


class AgentError(PlaneteerError):
    """A turn or session operation failed; the message is safe to show and to save in the plan.

    Raised out of a run (the runtime did not start, or stopped), it exits 1 like a failed task.
    """

    exit_code = EXIT_TASKS_FAILED


class TurnTimeout(AgentError):
    """The turn produced no event for longer than the quiet timeout."""


class SessionNotFound(AgentError):
    """A session that was to be resumed does not exist in this Copilot home."""


class SessionAlreadyExists(AgentError):
    """A session was to be created under an id that is already taken."""


class Agent(Protocol):
    async def start(self) -> None:
        """Start the runtime. Raises AgentError with an actionable message when it cannot."""

    async def run_turn(self, request: TurnRequest) -> TurnResult:
        """Create or resume the session and run one turn to its end.

        Cancelling the awaiting task aborts the turn and disconnects the session, keeping its data.
        """

    async def get_session(self, session_id: str) -> SessionInfo | None: ...

    async def list_sessions(self, repository: str | None, branch: str | None) -> list[SessionInfo]: ...

    async def delete_session(self, session_id: str) -> None: ...

    async def user_messages(self, session_id: str) -> list[str] | None:
        """The user messages the session's stored conversation holds, oldest first; None if it is not stored.

        A resume consults this: a session interrupted before its first prompt arrived holds no task.
        """

    async def stop(self) -> None:
        """Disconnect every session and stop the runtime and everything it started."""
