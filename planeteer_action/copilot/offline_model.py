"""A local OpenAI-compatible chat-completions server that stands in for a real model.

The Copilot CLI talks to it as a BYOK provider (`provider_config`), so whole sessions run for real without
the internet: real tool calls, real files, sessions on disk. Two uses:

* `planeteer --offline`: the built-in deterministic model finishes every task with one real `bash` call
  that writes `planeteer-notes/<task-slug>.md` in the session's working directory, then a summary.
* Integration tests: a per-task script of steps (tool calls, answers, delays, HTTP errors, hangs), and a
  request log to assert on what the CLI really sent.

The task is recognised by the line `Planeteer task id: <id>` that the engine puts in its prompts.
Run standalone with `python -m planeteer_action.copilot.offline_model --port 0 --script FILE --log FILE`; the first
line printed is the base URL.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from planeteer_action.copilot.offline_requests import (
    current_turn,
    find_task_id,
    log_message,
    session_context,
)
from planeteer_action.engine.prompts import TASK_MARKER
from planeteer_action.plan.session_ids import task_slug

OFFLINE_MODEL = "planeteer-offline"
NOTES_DIR = "planeteer-notes"

_ACTION_KEYS = ("bash", "create", "tool", "text", "error", "hang")

Step = dict[str, Any]
Script = Mapping[str, Sequence[Step]]


def provider_config(base_url: str) -> dict[str, str]:
    """The BYOK provider settings that point a Copilot session at this server."""
    return {"type": "openai", "base_url": base_url, "api_key": "offline"}


def note_path(task_id: str) -> str:
    """Where the built-in model writes its note, relative to the session's working directory."""
    return f"{NOTES_DIR}/{task_slug(task_id)}.md"


def load_script(path: str | os.PathLike[str]) -> dict[str, list[Step]]:
    """Read a script file: a JSON object mapping task id to a list of steps."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"{path}: a script must be a JSON object mapping task ids to lists of steps")
    return {str(task): list(steps) for task, steps in data.items()}


class _Answer:
    """What one request is answered with: a chat message, or an HTTP error status."""

    def __init__(self, message: dict[str, Any] | None = None, status: int = 200) -> None:
        self.message = message
        self.status = status

    @staticmethod
    def text(content: str) -> _Answer:
        return _Answer({"role": "assistant", "content": content})

    @staticmethod
    def tool(name: str, arguments: Mapping[str, Any]) -> _Answer:
        call = {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }
        return _Answer({"role": "assistant", "content": None, "tool_calls": [call]})

    def describe(self) -> str:
        if self.message is None:
            return f"error {self.status}"
        calls = self.message.get("tool_calls")
        return f"tool {calls[0]['function']['name']}" if calls else "text"


def default_answer(task_id: str | None, messages: Sequence[Mapping[str, Any]]) -> _Answer:
    """The built-in model: one real bash call that writes the task's note, then a one-line summary."""
    if task_id is None:
        return _Answer.text(f"No '{TASK_MARKER}' line in the conversation; the offline model has nothing to do.")
    path = note_path(task_id)
    if any(m.get("role") == "assistant" for m in current_turn(messages)):
        return _Answer.text(f"Completed {task_id}: wrote {path}")
    lines = [f"# {task_id}", "", "Completed by the Planeteer offline model (no real model was used)."]
    command = (
        f"mkdir -p {NOTES_DIR} && printf '%s\\n' {' '.join(shlex.quote(line) for line in lines)}"
        f" > {shlex.quote(path)} && cat {shlex.quote(path)}"
    )
    return _Answer.tool("bash", {"command": command, "description": f"Write the note for {task_id}"[:100]})


def _check_step(task_id: str, step: Step) -> None:
    actions = [key for key in _ACTION_KEYS if key in step]
    unknown = set(step) - {"delay", *_ACTION_KEYS}
    if unknown or len(actions) > 1 or not (actions or "delay" in step):
        raise ValueError(
            f"offline model script step {step!r} of task {task_id!r} is not valid: give 'delay' and/or"
            f" exactly one of {', '.join(_ACTION_KEYS)}"
        )


def _step_answer(step: Step) -> _Answer:
    if "bash" in step:
        args = step["bash"]
        arguments = dict(args) if isinstance(args, Mapping) else {"command": str(args)}
        arguments.setdefault("description", "Run a scripted command")
        return _Answer.tool("bash", arguments)
    if "create" in step:
        return _Answer.tool("create", dict(step["create"]))
    if "tool" in step:
        return _Answer.tool(str(step["tool"]["name"]), dict(step["tool"].get("arguments") or {}))
    if "text" in step:
        return _Answer.text(str(step["text"]))
    return _Answer(status=int(step["error"]))


class OfflineModelServer:
    """The chat-completions server, in a daemon thread on 127.0.0.1.

    `script` maps task ids to steps consumed in order across that task's requests; a path names a JSON file
    holding such a mapping (what the `--script` option of this module's command line gives). Tasks without
    steps (or whose steps are used up) get the built-in model. Steps: `{"bash": "cmd"}` (or a dict of bash
    arguments), `{"create": {"path": ..., "file_text": ...}}`, `{"tool": {"name": ..., "arguments": {...}}}` (any
    tool the CLI offers, an MCP server's `<server>-<tool>` too), `{"text": "..."}`, `{"error": 500}`,
    `{"hang": true}` (no answer until `stop()`), and `{"delay": s}`, alone (then the next step answers the
    same request) or together with one of the others.
    """

    def __init__(
        self,
        script: Script | str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        port: int = 0,
    ) -> None:
        if isinstance(script, (str, os.PathLike)):
            script = load_script(script)
        self._steps: dict[str, list[Step]] = {task: list(steps) for task, steps in (script or {}).items()}
        for task, steps in self._steps.items():
            for step in steps:
                _check_step(task, step)
        self._log_path = Path(log_path) if log_path is not None else None
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every chat request so far, oldest first: {time, task_id, messages, answer} and `session_context`."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, task_id: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["task_id"] == task_id]

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the offline model server is not running; call start() first")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> str:
        """Start serving and return the base URL (ending in /v1) for `provider_config`."""
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _Server(("127.0.0.1", self._port), _handler_for(self))
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(0.05,), name="offline-model", daemon=True
            )
            self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving; requests held by `hang` or `delay` are released without an answer."""
        httpd, self._httpd = self._httpd, None
        self._stopping.set()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OfflineModelServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def answer(self, body: Mapping[str, Any]) -> _Answer | None:
        """Decide the answer to one chat request; None means the server stopped while holding it."""
        messages = body.get("messages") or []
        task_id = find_task_id(messages)
        while True:
            step = self._next_step(task_id)
            if step is None:
                answer = default_answer(task_id, messages)
                break
            if "delay" in step and self._stopping.wait(float(step["delay"])):
                return None
            if step.get("hang"):
                self._stopping.wait()
                return None
            if set(step) != {"delay"}:
                answer = _step_answer(step)
                break
        self._record(task_id, body, answer)
        return answer

    def _next_step(self, task_id: str | None) -> Step | None:
        with self._lock:
            steps = self._steps.get(task_id or "")
            return steps.pop(0) if steps else None

    def _record(self, task_id: str | None, body: Mapping[str, Any], answer: _Answer) -> None:
        entry = {
            "time": time.time(),
            "task_id": task_id,
            "messages": [log_message(m) for m in body.get("messages") or []],
            "answer": answer.describe(),
            **session_context(body),
        }
        with self._lock:
            self._requests.append(entry)
            if self._log_path is not None:
                with self._log_path.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(entry) + "\n")


def _completion(model: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A CLI stopped mid-turn hangs up before its answer: nobody is left to tell. Anything else is a bug."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(server: OfflineModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: requests go to the structured log, and headers carry the API key."""

        def _send_json(self, status: int, payload: Mapping[str, Any]) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send_json(status, {"error": {"message": message, "type": "offline_model_error"}})

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                model = {"id": OFFLINE_MODEL, "object": "model", "created": 0, "owned_by": "planeteer"}
                self._send_json(200, {"object": "list", "data": [model]})
            else:
                self._error(404, f"no such endpoint: GET {self.path}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._error(400, "request body is not JSON")
                return
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._error(404, f"no such endpoint: POST {self.path}; use /v1/chat/completions")
                return
            if body.get("stream"):
                self._error(400, "the offline model does not stream; create the session without streaming")
                return
            answer = server.answer(body)
            if answer is None:
                self.close_connection = True
            elif answer.message is None:
                self._error(answer.status, f"scripted error {answer.status}")
            else:
                self._send_json(200, _completion(str(body.get("model") or OFFLINE_MODEL), answer.message))

    return Handler


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the Planeteer offline model on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 picks a free one)")
    parser.add_argument("--script", help="JSON file mapping task ids to lists of steps")
    parser.add_argument("--log", help="append one JSON line per request to this file")
    args = parser.parse_args(argv)
    server = OfflineModelServer(script=args.script, log_path=args.log, port=args.port)
    print(server.start(), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
