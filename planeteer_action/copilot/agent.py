"""`Agent` on the real GitHub Copilot SDK and CLI; the only module that imports the SDK.

Each turn opens its session (create or resume), sends one prompt, waits for the session to go idle, and
disconnects it again, so between turns nothing is attached and a later turn (or a later process) resumes
from what is on disk. The CLI runs through `runtime`'s launcher in a session of its own and tagged, so a
terminal Ctrl-C leaves it able to abort turns cleanly and `stop()` can find everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from copilot import CopilotClient, CopilotSession, RuntimeConnection, SessionListFilter, SessionMetadata
from copilot.session import PermissionHandler, ProviderConfig
from copilot.session_events import (
    AssistantMessageData,
    SessionErrorData,
    SessionEvent,
    SessionIdleData,
    ToolExecutionStartData,
    UserMessageData,
)

from planeteer_action.copilot import runtime
from planeteer_action.engine.agent import (
    AgentError,
    SessionAlreadyExists,
    SessionInfo,
    SessionNotFound,
    TurnRequest,
    TurnResult,
    TurnTimeout,
)
from planeteer_action.redaction import mask

_T = TypeVar("_T")

# The SDK logs failures it also raises (e.g. resuming an unknown session) as warnings with tracebacks; we
# turn those into one-line AgentErrors, so keep them off stderr unless the application configures logging.
logging.getLogger("copilot").addHandler(logging.NullHandler())

_INTERRUPT_TIMEOUT = 1.0
"""Seconds each of abort and disconnect may take when a turn is cancelled; shutdown must stay fast."""
_STOP_TIMEOUT = 5.0
_PING_INTERVAL = 2.0
_PING_TIMEOUT = 10.0
_ACTIVITY_WIDTH = 120
_NAME_MAX_UTF16 = 100


class CopilotAgent:
    """One Copilot CLI process on one Copilot home, shared by all of a plan's sessions."""

    def __init__(
        self,
        cli_path: Path,
        copilot_home: Path | None = None,
        model: str | None = None,
        provider: Mapping[str, str] | None = None,
        github_token: str | None = None,
        process_tag: str | None = None,
    ) -> None:
        self._cli_path = cli_path
        self._copilot_home = copilot_home
        self._model = model
        self._provider = cast(ProviderConfig, dict(provider)) if provider else None
        self._github_token = github_token
        secrets = (github_token, *((provider or {}).get(key) for key in ("api_key", "bearer_token")))
        self._secrets = [secret for secret in secrets if secret]
        self.process_tag = process_tag or uuid.uuid4().hex
        """Every process the CLI starts carries this in $PLANETEER_RUNTIME_TAG (see `runtime`)."""
        self._client: CopilotClient | None = None
        self._launcher_dir: Path | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._live: dict[str, tuple[_Turn, CopilotSession]] = {}
        """Sessions with a turn running, so `stop()` can end them cleanly."""

    async def start(self) -> None:
        if self._client is not None:
            return
        self._launcher_dir = Path(tempfile.mkdtemp(prefix="planeteer-cli-"))
        launcher = runtime.write_detached_launcher(self._cli_path, self._launcher_dir)
        runtime.hide_own_secrets()
        client = CopilotClient(
            connection=RuntimeConnection.for_stdio(path=str(launcher)),
            base_directory=str(self._copilot_home) if self._copilot_home else None,
            env=runtime.agent_environment(self.process_tag, self._github_token),
        )
        try:
            await client.start()
        except Exception as error:
            await self._discard(client)
            raise AgentError(
                f"Copilot CLI {self._cli_path} did not start ({self._clean(error)}); check that"
                f" `{self._cli_path} --version` works, or reinstall it: {runtime.INSTALL_COMMAND}"
            ) from None
        self._client = client
        self._watchdog = asyncio.create_task(self._watch(client))

    async def run_turn(self, request: TurnRequest) -> TurnResult:
        turn = _Turn(request)
        session = await self._open(request, turn)
        self._live[request.session_id] = (turn, session)
        try:
            await session.send(request.prompt)
            return TurnResult(summary=await turn.wait(self._clean))
        except (asyncio.CancelledError, TurnTimeout):
            await _quietly(session.abort())
            raise
        except AgentError:
            raise
        except Exception as error:
            raise AgentError(
                f"Session {request.session_id}: the turn failed ({self._clean(error)}); resume it to retry"
            ) from None
        finally:
            turn.close()
            self._live.pop(request.session_id, None)
            await _quietly(session.disconnect())

    async def get_session(self, session_id: str) -> SessionInfo | None:
        metadata = await self._call(self._require_client().get_session_metadata(session_id))
        return _session_info(metadata) if metadata else None

    async def list_sessions(self, repository: str | None, branch: str | None) -> list[SessionInfo]:
        """Sessions of this Copilot home; `None` for repository or branch means any."""
        query = None
        if repository is not None or branch is not None:
            query = SessionListFilter(repository=repository, branch=branch)
        return [_session_info(m) for m in await self._call(self._require_client().list_sessions(query))]

    async def delete_session(self, session_id: str) -> None:
        try:
            await self._require_client().delete_session(session_id)
        except Exception as error:
            if "not found" in str(error).lower():
                raise SessionNotFound(f"Session {session_id} does not exist, so there is nothing to delete") from None
            raise AgentError(f"Deleting session {session_id} failed: {self._clean(error)}") from None

    async def stop(self) -> None:
        """Abort running turns, stop the CLI (forcefully if it hangs), and end whatever it left running."""
        client, self._client = self._client, None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        live, self._live = list(self._live.values()), {}
        for turn, _ in live:
            turn.fail(AgentError("The Copilot runtime was stopped during the turn; resume the session"))
        await asyncio.gather(*(_interrupt(session) for _, session in live))
        if client is not None:
            await self._discard(client)
        await asyncio.to_thread(runtime.kill_tagged_processes, self.process_tag)
        if self._launcher_dir is not None:
            shutil.rmtree(self._launcher_dir, ignore_errors=True)
            self._launcher_dir = None

    async def _watch(self, client: CopilotClient) -> None:
        """Fail running turns soon after the CLI dies, rather than after their quiet timeout.

        A dead CLI makes `ping` fail at once; a slow answer is left to the quiet timeout.
        """
        while True:
            await asyncio.sleep(_PING_INTERVAL)
            if not self._live:
                continue
            try:
                await asyncio.wait_for(client.ping(), _PING_TIMEOUT)
            except TimeoutError:
                continue
            except Exception as error:
                for turn, _ in self._live.values():
                    turn.fail(AgentError(f"The Copilot CLI stopped during the turn ({self._clean(error)}); resume it"))
                return

    async def _discard(self, client: CopilotClient) -> None:
        try:
            await asyncio.wait_for(client.stop(), _STOP_TIMEOUT)
        except Exception:
            await _quietly(client.force_stop())

    async def _open(self, request: TurnRequest, turn: _Turn) -> CopilotSession:
        client = self._require_client()
        options: dict[str, Any] = {
            "model": self._model,
            "provider": self._provider,
            "working_directory": str(request.working_directory),
            "on_permission_request": PermissionHandler.approve_all,
            "on_event": turn.on_event,
        }
        sid = request.session_id
        if request.mode == "create":
            if await self._call(client.get_session_metadata(sid)) is not None:
                raise SessionAlreadyExists(f"Session {sid} already exists; resume it instead of creating it again")
            name = session_name(request.session_name) or sid
            return await self._call(client.create_session(session_id=sid, name=name, **options))
        try:
            return await client.resume_session(sid, **options)
        except Exception as error:
            if "session not found" in str(error).lower():
                raise SessionNotFound(
                    f"Session {sid} is not in this Copilot home; start the task again in a new session"
                ) from None
            raise AgentError(f"Resuming session {sid} failed: {self._clean(error)}") from None

    async def _call(self, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except AgentError:
            raise
        except Exception as error:
            raise AgentError(
                f"Copilot CLI request failed: {self._clean(error)}; if the CLI stopped, run again"
            ) from None

    def _require_client(self) -> CopilotClient:
        if self._client is None:
            raise AgentError("The Copilot runtime is not running; call start() before using it")
        return self._client

    def _clean(self, error: BaseException) -> str:
        """One line of an error's text with every configured secret masked."""
        return mask(" ".join(str(error).split()) or type(error).__name__, self._secrets)[:500]


class _Turn:
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


def session_name(name: str) -> str:
    """`name` made acceptable to the CLI: no double quotes or control characters, at most 100 UTF-16 units."""
    cleaned = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in name[: 4 * _NAME_MAX_UTF16])
    cleaned = " ".join(cleaned.replace('"', "'").split())[:_NAME_MAX_UTF16]
    while len(cleaned.encode("utf-16-le")) > 2 * _NAME_MAX_UTF16:
        cleaned = cleaned[:-1].rstrip()
    return cleaned


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


def _session_info(metadata: SessionMetadata) -> SessionInfo:
    context = metadata.context
    return SessionInfo(
        session_id=metadata.session_id,
        summary=metadata.summary or "",
        start_time=metadata.start_time,
        modified_time=metadata.modified_time,
        repository=context.repository if context else None,
        branch=context.branch if context else None,
        working_directory=context.working_directory if context else None,
    )


async def _interrupt(session: CopilotSession) -> None:
    await _quietly(session.abort())
    await _quietly(session.disconnect())


async def _quietly(call: Awaitable[object]) -> None:
    """Best effort within `_INTERRUPT_TIMEOUT`: used on paths that are already failing or shutting down."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(call, _INTERRUPT_TIMEOUT)
