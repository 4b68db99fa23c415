"""Following one turn of a Copilot session through its events: activity, the quiet clock, the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from copilot.session_events import (
    AssistantMessageData,
    SessionErrorData,
    SessionEvent,
    SessionIdleData,
    ToolExecutionStartData,
    UserMessageData,
)

from planeteer_action.engine.agent import AgentError, TurnRequest, TurnTimeout

_ACTIVITY_WIDTH = 120


class Turn:
    """Follows one turn's events: reports activity, keeps the quiet clock, finds the end and the answer."""

    def __init__(self, request: TurnRequest) -> None:
        self._request = request
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[str] = self._loop.create_future()
        self._last_event = self._loop.time()
        self._started = False
        self._summary = ""

    def on_event(self, event: SessionEvent) -> None:
        if self._done.done():
            return
        self._last_event = self._loop.time()
        data = event.data
        if isinstance(data, ToolExecutionStartData):
            self._report(f"{data.tool_name}: {_tool_detail(data.arguments)}")
        if event.agent_id:
            return
        if isinstance(data, UserMessageData):
            self._started = True
        elif isinstance(data, AssistantMessageData) and data.content.strip():
            self._summary = data.content.strip()
            self._report(self._summary)
        elif isinstance(data, SessionErrorData):
            self.fail(AgentError(f"Session {self._request.session_id}: {data.message}; resume it to retry"))
        elif isinstance(data, SessionIdleData) and self._started:
            if data.aborted:
                self.fail(AgentError(f"Session {self._request.session_id}: the turn was aborted; resume it"))
            else:
                self._done.set_result(self._summary)

    def fail(self, error: AgentError) -> None:
        if not self._done.done():
            self._done.set_exception(error)

    def close(self) -> None:
        """Stop listening: events of an abandoned turn (its abort, its last idle) must not fail it later."""
        self._done.cancel()

    async def wait(self, clean: Callable[[BaseException], str]) -> str:
        """The final answer, or TurnTimeout once no event has come for `quiet_timeout` seconds."""
        quiet = self._request.quiet_timeout
        while not self._done.done():
            remaining = self._last_event + quiet - self._loop.time()
            if remaining <= 0:
                raise TurnTimeout(
                    f"Session {self._request.session_id}: no activity for {quiet:g} s, so the turn was"
                    " aborted; check the model provider or raise the quiet timeout"
                )
            await asyncio.wait([self._done], timeout=remaining)
        try:
            return self._done.result()
        except AgentError as error:
            raise type(error)(clean(error)) from None

    def _report(self, text: str) -> None:
        self._request.on_activity(_one_line(text))


def _tool_detail(arguments: Any) -> str:
    if not isinstance(arguments, Mapping):
        return ""
    for key in ("command", "path", "pattern", "url", "query", "shellId"):
        if isinstance(arguments.get(key), str):
            return str(arguments[key])
    return ""


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _ACTIVITY_WIDTH else line[: _ACTIVITY_WIDTH - 1] + "…"
