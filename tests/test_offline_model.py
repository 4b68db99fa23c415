"""The offline model server over plain HTTP, without the Copilot CLI."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from planeteer_action.copilot.offline_model import (
    OFFLINE_MODEL,
    OfflineModelServer,
    note_path,
    provider_config,
)
from planeteer_action.copilot.offline_requests import find_task_id

REPO = Path(__file__).resolve().parents[1]


def post(base_url: str, body: dict[str, Any], timeout: float = 10) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer offline"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def user(task_id: str, text: str = "Do the task.") -> dict[str, Any]:
    return {
        "role": "user",
        "content": f"<current_datetime>now</current_datetime>\n\nPlaneteer task id: {task_id}\n{text}",
    }


def chat(*messages: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": OFFLINE_MODEL,
        "temperature": 0,
        "messages": [{"role": "system", "content": "S" * 50}, *messages],
    }


def reply(response: dict[str, Any]) -> dict[str, Any]:
    choice = response["choices"][0]
    assert choice["finish_reason"] == ("tool_calls" if choice["message"].get("tool_calls") else "stop")
    message: dict[str, Any] = choice["message"]
    return message


def tool_result(call: dict[str, Any], output: str) -> list[dict[str, Any]]:
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": output},
    ]


def test_default_model_writes_the_note_with_a_real_bash_call_then_summarises(tmp_path: Path) -> None:
    with OfflineModelServer() as server:
        status, first = post(server.base_url, chat(user("Build the API")))
        assert status == 200
        call = reply(first)["tool_calls"][0]
        assert call["function"]["name"] == "bash"
        arguments = json.loads(call["function"]["arguments"])
        assert set(arguments) == {"command", "description"}

        subprocess.run(["bash", "-c", arguments["command"]], cwd=tmp_path, check=True, capture_output=True)
        note = (tmp_path / note_path("Build the API")).read_text()
        assert note_path("Build the API").startswith("planeteer-notes/")
        assert "# Build the API" in note and "offline model" in note

        status, second = post(server.base_url, chat(user("Build the API"), *tool_result(call, note)))
        assert reply(second) == {
            "role": "assistant",
            "content": f"Completed Build the API: wrote {note_path('Build the API')}",
        }
        # Deterministic: the same conversation gets the same command.
        _, again = post(server.base_url, chat(user("Build the API")))
        assert json.loads(reply(again)["tool_calls"][0]["function"]["arguments"]) == arguments


def test_a_new_turn_after_a_finished_one_starts_over() -> None:
    with OfflineModelServer() as server:
        history = [
            user("t1"),
            {"role": "assistant", "content": "Completed t1: wrote x"},
            user("t1", "Continue."),
        ]
        _, response = post(server.base_url, chat(*history))
        assert reply(response)["tool_calls"][0]["function"]["name"] == "bash"


def test_without_a_task_marker_the_model_answers_without_tools() -> None:
    with OfflineModelServer() as server:
        _, response = post(server.base_url, chat({"role": "user", "content": "hello"}))
        assert "Planeteer task id:" in reply(response)["content"]
        assert server.requests[-1]["task_id"] is None


def test_task_id_comes_from_the_latest_user_message_naming_one() -> None:
    messages = [
        user("first"),
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "Planeteer task id: second \nmore"}]},
        {"role": "user", "content": "no marker here"},
    ]
    assert find_task_id(messages) == "second"
    assert find_task_id([{"role": "system", "content": "Planeteer task id: nope"}]) is None


def test_script_steps_are_consumed_in_order_per_task_then_the_default_takes_over() -> None:
    script: dict[str, list[dict[str, Any]]] = {
        "a": [{"bash": "echo one"}, {"create": {"path": "/tmp/x.txt", "file_text": "x"}}, {"text": "done a"}],
        "b": [{"bash": {"command": "sleep 1 &", "mode": "async", "detach": True}}],
    }
    with OfflineModelServer(script=script) as server:
        _, r1 = post(server.base_url, chat(user("a")))
        _, r2 = post(server.base_url, chat(user("b")))
        _, r3 = post(server.base_url, chat(user("a")))
        _, r4 = post(server.base_url, chat(user("a")))
        _, r5 = post(server.base_url, chat(user("a")))

        first = reply(r1)["tool_calls"][0]["function"]
        assert (first["name"], json.loads(first["arguments"])["command"]) == ("bash", "echo one")
        b_args = json.loads(reply(r2)["tool_calls"][0]["function"]["arguments"])
        assert b_args["mode"] == "async" and b_args["detach"] is True and b_args["description"]
        create = reply(r3)["tool_calls"][0]["function"]
        assert create["name"] == "create"
        assert json.loads(create["arguments"]) == {"path": "/tmp/x.txt", "file_text": "x"}
        assert reply(r4)["content"] == "done a"
        assert "note" in json.loads(reply(r5)["tool_calls"][0]["function"]["arguments"])["description"]
        assert [r["answer"] for r in server.requests_for("a")] == [
            "tool bash",
            "tool create",
            "text",
            "tool bash",
        ]


def test_delay_holds_the_answer_alone_or_combined_with_a_step() -> None:
    script: dict[str, list[dict[str, Any]]] = {
        "d": [{"delay": 0.3}, {"text": "after a delay"}, {"delay": 0.3, "text": "combined"}]
    }
    with OfflineModelServer(script=script) as server:
        start = time.monotonic()
        _, r1 = post(server.base_url, chat(user("d")))
        middle = time.monotonic()
        _, r2 = post(server.base_url, chat(user("d")))
        end = time.monotonic()
    assert reply(r1)["content"] == "after a delay" and middle - start >= 0.3
    assert reply(r2)["content"] == "combined" and end - middle >= 0.3


def test_error_step_answers_with_that_http_status() -> None:
    with OfflineModelServer(script={"e": [{"error": 503}]}) as server:
        status, body = post(server.base_url, chat(user("e")))
        assert status == 503 and "503" in body["error"]["message"]
        assert server.requests[-1]["answer"] == "error 503"


def test_hang_holds_the_request_until_the_server_stops() -> None:
    server = OfflineModelServer(script={"h": [{"hang": True}]})
    base_url = server.start()
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(post(base_url, chat(user("h")), timeout=10))
        except Exception as error:
            outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    caller.join(timeout=0.5)
    assert caller.is_alive(), "a hung request must not be answered"
    start = time.monotonic()
    server.stop()
    caller.join(timeout=5)
    assert not caller.is_alive() and time.monotonic() - start < 5
    assert isinstance(outcome[0], Exception)


def test_requests_are_logged_in_memory_and_to_a_file_without_the_system_prompt(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    with OfflineModelServer(script={"t": [{"bash": "true"}, {"text": "ok"}]}, log_path=log) as server:
        _, first = post(server.base_url, chat(user("t")))
        call = reply(first)["tool_calls"][0]
        post(server.base_url, chat(user("t"), *tool_result(call, "output")))
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == server.requests
    assert [entry["task_id"] for entry in lines] == ["t", "t"]
    messages = lines[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert "content" not in messages[0]
    assert messages[2]["tool_calls"] == [{"id": call["id"], "name": "bash"}]
    assert messages[3] == {"role": "tool", "content": "output", "tool_call_id": call["id"]}
    assert isinstance(lines[0]["time"], float)


def test_a_tool_step_calls_any_tool_and_requests_record_what_the_cli_offered() -> None:
    # The system prompt's shape as the Copilot CLI 1.0.102 sends it (skills listed, a custom agent's instructions).
    system = (
        "...</edit>\n<skill>\n<available_skills>\n<skill>\n  <name>beta</name>\n  <description>B</description>\n"
        "  <location>custom</location>\n</skill>\n</available_skills>\n</skill>\n<agent_instructions>\nThe"
        " following instructions come from the selected agent's configuration.\n\nYou are a reviewer.\n"
        "</agent_instructions>\n<tool_calling>..."
    )
    tools = [{"type": "function", "function": {"name": name}} for name in ("bash", "tiny-shout")]
    with OfflineModelServer(script={"m": [{"tool": {"name": "tiny-shout", "arguments": {"text": "hi"}}}]}) as server:
        body = {**chat(user("m")), "tools": tools}
        body["messages"][0]["content"] = system
        _, first = post(server.base_url, body)
        post(server.base_url, chat(user("n")))
    call = reply(first)["tool_calls"][0]["function"]
    assert (call["name"], json.loads(call["arguments"])) == ("tiny-shout", {"text": "hi"})
    with_context, without = server.requests
    assert with_context["tools"] == ["bash", "tiny-shout"] and with_context["skills"] == ["beta"]
    assert with_context["agent_instructions"].endswith("You are a reviewer.")
    assert (without["tools"], without["skills"], without["agent_instructions"]) == ([], [], None)


def test_models_endpoint_and_unknown_paths() -> None:
    with OfflineModelServer() as server:
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=5) as response:
            assert [m["id"] for m in json.loads(response.read())["data"]] == [OFFLINE_MODEL]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{server.base_url}/nothing", timeout=5)
        assert missing.value.code == 404


def test_streaming_requests_are_refused_with_a_clear_error() -> None:
    with OfflineModelServer() as server:
        status, body = post(server.base_url, {**chat(user("s")), "stream": True})
    assert status == 400 and "stream" in body["error"]["message"]


def test_invalid_steps_are_refused_when_the_server_is_made() -> None:
    with pytest.raises(ValueError, match="not valid"):
        OfflineModelServer(script={"x": [{"bash": "a", "text": "b"}]})
    with pytest.raises(ValueError, match="not valid"):
        OfflineModelServer(script={"x": [{"sleep": 1}]})


def test_script_from_a_file_named_to_the_constructor(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"f": [{"text": "from the file"}]}))
    with OfflineModelServer(script=script) as server:
        _, response = post(server.base_url, chat(user("f")))
    assert reply(response)["content"] == "from the file"


def test_the_environment_cannot_script_the_shipped_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"f": [{"text": "from the environment"}]}))
    monkeypatch.setenv("PLANETEER_OFFLINE_SCRIPT", str(script))
    with OfflineModelServer() as server:
        _, response = post(server.base_url, chat(user("f")))
    assert reply(response).get("tool_calls"), "the built-in model answers, whatever the environment says"


def test_provider_config_points_the_cli_at_the_server() -> None:
    assert provider_config("http://127.0.0.1:1/v1") == {
        "type": "openai",
        "base_url": "http://127.0.0.1:1/v1",
        "api_key": "offline",
    }


def test_runs_as_a_separate_process(tmp_path: Path) -> None:
    script, log = tmp_path / "script.json", tmp_path / "log.jsonl"
    script.write_text(json.dumps({"p": [{"text": "from another process"}]}))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "planeteer_action.copilot.offline_model",
            "--port",
            "0",
            "--script",
            str(script),
            "--log",
            str(log),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        _, response = post(base_url, chat(user("p")))
        assert reply(response)["content"] == "from another process"
        assert json.loads(log.read_text().splitlines()[0])["task_id"] == "p"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_a_client_gone_before_its_answer_leaves_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    """A Copilot CLI stopped mid-turn (Ctrl-C, a kill) hangs up while the model is still answering."""
    body = json.dumps(chat(user("gone"))).encode()
    with OfflineModelServer(script={"gone": [{"delay": 0.3, "text": "too late"}] * 3}) as server:
        host, port = server.base_url.split("//", 1)[1].split("/", 1)[0].split(":")
        for _ in range(3):
            with socket.create_connection((host, int(port))) as connection:
                head = f"POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
                connection.sendall(head.encode() + body)
                # Close with a reset, as a killed process's socket does: the answer's write then fails.
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            time.sleep(0.5)
        status, _ = post(server.base_url, chat(user("other")))
    assert status == 200, "the server kept answering others"
    assert "Traceback" not in capfd.readouterr().err
