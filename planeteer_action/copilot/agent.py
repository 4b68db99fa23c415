"""`Agent` on the real GitHub Copilot SDK and CLI; the only module that imports the SDK.

Each turn opens its session (create or resume), sends one prompt, waits for the session to go idle, and
disconnects it again, so between turns nothing is attached and a later turn (or a later process) resumes
from what is on disk. The CLI runs through `runtime`'s launcher in a session of its own and tagged, so a
terminal Ctrl-C leaves it able to abort turns cleanly and `stop()` can find everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from copilot import CopilotClient, CopilotSession, RuntimeConnection, SessionListFilter, SessionMetadata
from copilot.session import ProviderConfig

from planeteer_action.copilot import runtime
from planeteer_action.copilot.permissions import PermissionPolicy
from planeteer_action.copilot.session_options import raise_if_unknown_agent, secrets_of, session_options
from planeteer_action.copilot.task_env import TaskEnvironment
from planeteer_action.copilot.turn import Turn
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
_NAME_MAX_UTF16 = 100
_SESSION_GONE = re.compile(r"\bsession (?:file )?not found\b", re.IGNORECASE)
"""The CLI's words for an unknown session id; the SDK passes them on in a plain RuntimeError or JsonRpcError."""

SdkCall = Literal["get_session_metadata", "create_session", "resume_session", "send", "disconnect"]


@dataclass(frozen=True)
class SdkCallTiming:
    """When one SDK call of a turn started and ended (`time.perf_counter()`), to measure where a turn's time goes."""

    session_id: str
    call: SdkCall
    started: float
    ended: float


_SESSION_ID = re.compile(r"[A-Za-z0-9_-]+")
"""What the CLI accepts as a session id, and so all that can name a folder in its session store."""


class CopilotAgent:
    """One Copilot CLI process on one Copilot home, shared by all of a plan's sessions."""

    def __init__(
        self,
        cli_path: Path,
        copilot_home: Path | None = None,
        model: str | None = None,
        provider: Mapping[str, str] | None = None,
        github_token: str | None = None,
        on_sdk_call: Callable[[SdkCallTiming], None] | None = None,
        process_tag: str | None = None,
        withheld_variables: Collection[str] = (),
    ) -> None:
        """`on_sdk_call`, if given, hears the timing of every SDK call a turn makes (the benchmarks use it).
        `withheld_variables` are kept from the CLI and its agents, like planeteer's own secrets."""
        self._cli_path = cli_path
        self._on_sdk_call = on_sdk_call
        self._copilot_home = copilot_home
        self._model = model
        self._provider = cast(ProviderConfig, dict(provider)) if provider else None
        self._github_token = github_token
        self._withheld = tuple(withheld_variables)
        secrets = (github_token, *((provider or {}).get(key) for key in ("api_key", "bearer_token")))
        self._secrets = [secret for secret in secrets if secret]
        self.process_tag = process_tag or uuid.uuid4().hex
        """Every process the CLI starts carries this in $PLANETEER_RUNTIME_TAG (see `runtime`)."""
        self._client: CopilotClient | None = None
        self._private_dir: Path | None = None
        """Planeteer's own temporary folder (0700): the CLI's launcher, and the tasks' environment files."""
        self._watchdog: asyncio.Task[None] | None = None
        self._live: dict[str, tuple[Turn, CopilotSession]] = {}
        """Sessions with a turn running, so `stop()` can end them cleanly."""

    async def start(self) -> None:
        if self._client is not None:
            return
        self._private_dir = Path(tempfile.mkdtemp(prefix="planeteer-cli-"))
        launcher = runtime.write_detached_launcher(self._cli_path, self._private_dir)
        runtime.hide_own_secrets(self._withheld)
        client = CopilotClient(
            connection=RuntimeConnection.for_stdio(path=str(launcher)),
            base_directory=str(self._copilot_home) if self._copilot_home else None,
            env=runtime.agent_environment(self.process_tag, self._github_token, self._withheld),
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
        _ignore_answers_to_cancelled_requests(asyncio.get_running_loop())

    async def run_turn(self, request: TurnRequest) -> TurnResult:
        """The session runs under `request.rules` (see `session_options` and `permissions`)."""
        turn = Turn(request)
        secrets = secrets_of(request)

        def clean(error: BaseException | str) -> str:
            return self._clean(error, secrets)

        with TaskEnvironment(self._require_private_dir(), request.rules.env) as environment:
            permissions = PermissionPolicy(
                request.rules, request.working_directory, request.on_denied, clean, environment.own_commands()
            )
            options = session_options(
                request,
                model=self._model,
                provider=self._provider,
                permissions=permissions,
                on_event=turn.on_event,
                hooks=environment.hooks(),
            )
            session = await self._open(request, options, clean)
            self._live[request.session_id] = (turn, session)
            try:
                await self._timed(request.session_id, "send", session.send(request.prompt))
                return TurnResult(summary=await turn.wait(clean))
            except (asyncio.CancelledError, TurnTimeout):
                await _quietly(session.abort())
                raise
            except AgentError:
                raise
            except Exception as error:
                raise AgentError(
                    f"Session {request.session_id}: the turn failed ({clean(error)}); resume it to retry"
                ) from None
            finally:
                turn.close()
                self._live.pop(request.session_id, None)
                await _quietly(self._timed(request.session_id, "disconnect", session.disconnect()))

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
            if _SESSION_GONE.search(str(error)):
                raise SessionNotFound(f"Session {session_id} does not exist, so there is nothing to delete") from None
            raise AgentError(f"Deleting session {session_id} failed: {self._clean(error)}") from None

    async def user_messages(self, session_id: str) -> list[str] | None:
        """Read from the session's persisted events rather than through `get_events()`, which needs the session
        resumed: that would append to it, and needs the turn's working directory to keep its context right.
        """
        if not _SESSION_ID.fullmatch(session_id):
            return None
        home = self._copilot_home or Path(os.environ.get("COPILOT_HOME") or Path.home() / ".copilot")
        events = home / "session-state" / session_id / "events.jsonl"
        try:
            text = await asyncio.to_thread(events.read_text, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise AgentError(f"Cannot read session {session_id}'s history {events}: {error.strerror}") from None
        return [message for line in text.splitlines() if (message := _user_message(line)) is not None]

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
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

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

    async def _open(
        self, request: TurnRequest, options: dict[str, Any], clean: Callable[[BaseException], str]
    ) -> CopilotSession:
        client = self._require_client()
        sid = request.session_id
        if request.mode == "create":
            lookup = self._timed(sid, "get_session_metadata", client.get_session_metadata(sid))
            if await self._call(lookup) is not None:
                raise SessionAlreadyExists(f"Session {sid} already exists; resume it instead of creating it again")
            name = session_name(request.session_name) or sid
            creation = client.create_session(session_id=sid, name=name, **options)
            try:
                return await self._timed(sid, "create_session", creation)
            except Exception as error:
                raise_if_unknown_agent(request, options, error)
                raise AgentError(f"Copilot CLI request failed: {clean(error)}; if the CLI stopped, run again") from None
        try:
            return await self._timed(sid, "resume_session", client.resume_session(sid, **options))
        except Exception as error:
            if _SESSION_GONE.search(str(error)):
                raise SessionNotFound(
                    f"Session {sid} is not in this Copilot home; start the task again in a new session"
                ) from None
            raise_if_unknown_agent(request, options, error)
            raise AgentError(f"Resuming session {sid} failed: {clean(error)}") from None

    async def _timed(self, session_id: str, call: SdkCall, awaitable: Awaitable[_T]) -> _T:
        """Await `awaitable`, telling `on_sdk_call` how long it took, whether it succeeded or not."""
        started = time.perf_counter()
        try:
            return await awaitable
        finally:
            if self._on_sdk_call is not None:
                self._on_sdk_call(SdkCallTiming(session_id, call, started, time.perf_counter()))

    async def _call(self, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except AgentError:
            raise
        except Exception as error:
            raise AgentError(
                f"Copilot CLI request failed: {self._clean(error)}; if the CLI stopped, run again"
            ) from None

    def _require_private_dir(self) -> Path:
        if self._private_dir is None:
            raise AgentError("The Copilot runtime is not running; call start() before using it")
        return self._private_dir

    def _require_client(self) -> CopilotClient:
        if self._client is None:
            raise AgentError("The Copilot runtime is not running; call start() before using it")
        return self._client

    def _clean(self, error: BaseException | str, secrets: Sequence[str] = ()) -> str:
        """One line of an error's text with every configured secret, and the turn's `secrets`, masked."""
        text = " ".join(str(error).split()) or type(error).__name__
        return mask(text, [*self._secrets, *secrets])[:500]


def session_name(name: str) -> str:
    """`name` made acceptable to the CLI: no double quotes or control characters, at most 100 UTF-16 units."""
    cleaned = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in name[: 4 * _NAME_MAX_UTF16])
    cleaned = " ".join(cleaned.replace('"', "'").split())[:_NAME_MAX_UTF16]
    while len(cleaned.encode("utf-16-le")) > 2 * _NAME_MAX_UTF16:
        cleaned = cleaned[:-1].rstrip()
    return cleaned


def _user_message(line: str) -> str | None:
    """The text of one `events.jsonl` line if it is a user message; a line torn by a kill is skipped."""
    if '"user.message"' not in line:
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    data = event.get("data") if isinstance(event, dict) and event.get("type") == "user.message" else None
    content = data.get("content") if isinstance(data, dict) else None
    return content if isinstance(content, str) else None


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


def _ignore_answers_to_cancelled_requests(loop: asyncio.AbstractEventLoop) -> None:
    """The SDK's reader thread sets the CLI's answer on its request's future even when we cancelled the
    request (a Ctrl-C mid-call); asyncio then prints an InvalidStateError traceback. That answer is meant to be
    dropped, so drop it quietly; anything else goes to the handler that was there before.
    """
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), asyncio.InvalidStateError) and "Future.set_" in repr(
            context.get("handle")
        ):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


async def _interrupt(session: CopilotSession) -> None:
    await _quietly(session.abort())
    await _quietly(session.disconnect())


async def _quietly(call: Awaitable[object]) -> None:
    """Best effort within `_INTERRUPT_TIMEOUT`: used on paths that are already failing or shutting down."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(call, _INTERRUPT_TIMEOUT)
