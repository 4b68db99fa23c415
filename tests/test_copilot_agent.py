"""CopilotAgent on the real Copilot CLI, with the offline model server as its BYOK provider.

Integration tests run the real CLI (COPILOT_CLI_PATH, else the repo-local npm install in .tools/) and are
skipped only when neither exists. The runtime-location tests at the top need no CLI.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import CLI, running_agent
from harness import turn_request as turn
from helpers import alive, argv, git, live_processes, session_of

from planeteer_action.copilot import runtime
from planeteer_action.copilot.agent import CopilotAgent, SdkCallTiming, session_name
from planeteer_action.copilot.offline_model import OFFLINE_MODEL, OfflineModelServer, note_path, provider_config
from planeteer_action.engine.agent import (
    AgentError,
    SessionAlreadyExists,
    SessionNotFound,
    TurnTimeout,
)

REPO = Path(__file__).resolve().parents[1]

real_cli = pytest.mark.skipif(not CLI.exists(), reason=f"no Copilot CLI at {CLI}: {runtime.INSTALL_COMMAND}")

SCRIPT: dict[str, list[dict[str, Any]]] = {
    "twice": [{"text": "first and only turn"}],
    "restart": [{"text": "answer before the restart"}, {"text": "answer after the restart"}],
    "hang": [{"hang": True}],
    "cancel-0": [{"bash": "sleep 30"}, {"text": "resumed after the cancel"}],
    "cancel-1": [{"bash": "sleep 30"}],
    "cancel-2": [{"delay": 30, "text": "too late"}],
    "leftover": [
        {"bash": "nohup sleep 300 >/dev/null 2>&1 & echo started"},
        {"text": "left a sleep running"},
    ],
    "bad-request": [{"error": 400}],
    "cli-dies": [{"bash": "sleep 30"}, {"text": "resumed after the crash"}],
    "timed": [{"text": "first turn"}, {"text": "second turn"}],
}
SECRET = "sk-planeteer-test-secret"


# --- locating and launching the CLI without running it --------------------------------------------------


def test_find_copilot_cli_prefers_the_environment_then_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "my-copilot"
    fake.write_text("#!/bin/sh\necho 'GitHub Copilot CLI 9.8.7.'\n")
    fake.chmod(0o755)
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "copilot").symlink_to(fake)
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("COPILOT_CLI_PATH", str(fake))
    assert runtime.find_copilot_cli() == fake
    monkeypatch.delenv("COPILOT_CLI_PATH")
    assert runtime.find_copilot_cli() == on_path / "copilot"
    assert runtime.cli_version(fake) == "9.8.7"
    assert runtime.cli_version(tmp_path / "missing") is None


def test_a_wrong_copilot_cli_path_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COPILOT_CLI_PATH", str(tmp_path / "nope"))
    with pytest.raises(AgentError, match="COPILOT_CLI_PATH") as raised:
        runtime.find_copilot_cli()
    assert runtime.INSTALL_COMMAND in str(raised.value) and "\n" not in str(raised.value)


def test_no_cli_anywhere_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COPILOT_CLI_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("COPILOT_CLI_EXTRACT_DIR", str(tmp_path / "sdk-cache"))
    monkeypatch.setenv("COPILOT_SKIP_CLI_DOWNLOAD", "1")
    with pytest.raises(AgentError) as raised:
        runtime.find_copilot_cli()
    message = str(raised.value)
    assert message.endswith("install it with: npm install -g @github/copilot@1.0.102")
    assert "\n" not in message and runtime.PINNED_CLI_VERSION == "1.0.102"


def test_the_launcher_starts_its_command_in_a_new_session(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "print(json.dumps([os.getpid(), os.getsid(0), os.getpgrp(), sys.argv[1:]]))\n"
    )
    probe.chmod(0o755)
    launcher = runtime.write_detached_launcher(probe, tmp_path)
    child = subprocess.Popen([str(launcher), "a b", "c"], stdout=subprocess.PIPE, text=True)
    output, _ = child.communicate(timeout=30)
    pid, sid, pgrp, args = json.loads(output)
    assert pid == child.pid, "exec in place: the spawned process is the command itself"
    assert sid == pgrp == child.pid != os.getsid(0)
    assert args == ["a b", "c"]


def test_session_names_are_made_acceptable() -> None:
    assert session_name('Build "the" API\n\tnow\x00') == "Build 'the' API now"
    assert len(session_name("x" * 300)) == 100
    assert len(session_name("😀" * 80).encode("utf-16-le")) <= 200


# --- on the real CLI --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> Iterator[OfflineModelServer]:
    with OfflineModelServer(script=SCRIPT) as server:
        yield server


def conversation(request: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m.get("content", "")) for m in request["messages"] if m["role"] in ("user", "assistant")]


@pytest.mark.integration
@real_cli
def test_cli_version_is_the_pinned_one() -> None:
    assert runtime.cli_version(CLI) == runtime.PINNED_CLI_VERSION


@pytest.mark.integration
@real_cli
def test_offline_model_completes_a_task_through_a_real_tool_call(tmp_path: Path, model: OfflineModelServer) -> None:
    async def scenario() -> None:
        activity: list[str] = []
        async with running_agent(tmp_path / "home", model) as agent:
            result = await agent.run_turn(turn("write-notes", tmp_path, activity=activity))
            info = await agent.get_session("s-write-notes")
        assert result.summary == f"Completed write-notes: wrote {note_path('write-notes')}"
        note = (tmp_path / note_path("write-notes")).read_text()
        assert "# write-notes" in note and "offline model" in note
        assert activity[0].startswith("bash: mkdir -p planeteer-notes")
        assert activity[-1] == result.summary
        assert info is not None and info.summary == "Task write-notes"
        assert info.working_directory == str(tmp_path)

    asyncio.run(scenario())


@pytest.mark.integration
@real_cli
def test_creating_an_existing_session_is_refused_and_leaves_it_alone(tmp_path: Path, model: OfflineModelServer) -> None:
    home = tmp_path / "home"

    async def scenario() -> None:
        async with running_agent(home, model) as agent:
            await agent.run_turn(turn("twice", tmp_path))
            events = (home / "session-state" / "s-twice" / "events.jsonl").read_bytes()
            with pytest.raises(SessionAlreadyExists, match="s-twice"):
                await agent.run_turn(turn("twice", tmp_path))
            assert (home / "session-state" / "s-twice" / "events.jsonl").read_bytes() == events
        assert len(model.requests_for("twice")) == 1

    asyncio.run(scenario())


@pytest.mark.integration
@real_cli
def test_resume_after_a_restart_carries_the_earlier_conversation(tmp_path: Path, model: OfflineModelServer) -> None:
    home = tmp_path / "home"

    async def scenario() -> None:
        async with running_agent(home, model) as agent:
            first = await agent.run_turn(turn("restart", tmp_path))
        async with running_agent(home, model) as agent:
            second = await agent.run_turn(turn("restart", tmp_path, mode="resume"))
        assert (first.summary, second.summary) == ("answer before the restart", "answer after the restart")
        before, after = model.requests_for("restart")
        assert conversation(after)[: len(conversation(before))] == conversation(before)
        assert ("assistant", "answer before the restart") in conversation(after)
        assert sum("Planeteer task id: restart" in text for _, text in conversation(after)) == 2

    asyncio.run(scenario())


@pytest.mark.integration
@real_cli
def test_resuming_an_unknown_session_is_session_not_found(tmp_path: Path, model: OfflineModelServer) -> None:
    async def scenario() -> None:
        async with running_agent(tmp_path / "home", model) as agent:
            with pytest.raises(SessionNotFound, match="s-never-created"):
                await agent.run_turn(turn("never-created", tmp_path, mode="resume"))
            assert await agent.get_session("s-never-created") is None

    asyncio.run(scenario())


@pytest.mark.timing
@pytest.mark.integration
@real_cli
def test_a_quiet_turn_times_out_after_the_quiet_timeout(tmp_path: Path, model: OfflineModelServer) -> None:
    async def scenario() -> None:
        async with running_agent(tmp_path / "home", model) as agent:
            start = time.monotonic()
            with pytest.raises(TurnTimeout, match=r"no activity for 1\.5 s"):
                await agent.run_turn(turn("hang", tmp_path, quiet=1.5))
            assert 1.5 <= time.monotonic() - start < 4
            assert await agent.get_session("s-hang") is not None

    asyncio.run(scenario())


@pytest.mark.integration
@real_cli
def test_model_errors_fail_the_turn_with_a_clean_message_without_secrets(
    tmp_path: Path, model: OfflineModelServer
) -> None:
    async def scenario() -> None:
        async with running_agent(tmp_path / "home", model, api_key=SECRET) as agent:
            with pytest.raises(AgentError) as raised:
                await agent.run_turn(turn("bad-request", tmp_path))
        message = str(raised.value)
        assert type(raised.value) is AgentError and "400" in message and "s-bad-request" in message
        assert "\n" not in message and SECRET not in message

    asyncio.run(scenario())


@pytest.mark.timing
@pytest.mark.integration
@real_cli
def test_cancelling_turns_is_fast_and_keeps_the_sessions(tmp_path: Path, model: OfflineModelServer) -> None:
    """Three turns (two in a bash `sleep 30`, one waiting on the model) cancelled, agent stopped: < 2 s."""
    home = tmp_path / "home"

    async def scenario() -> None:
        activity: list[str] = []
        agent = CopilotAgent(CLI, copilot_home=home, model=OFFLINE_MODEL, provider=provider_config(model.base_url))
        await agent.start()
        tasks = [
            asyncio.create_task(agent.run_turn(turn(f"cancel-{i}", tmp_path, activity=activity))) for i in range(3)
        ]
        while activity.count("bash: sleep 30") < 2:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # cancel-2 is waiting on its delayed model answer by now
        start = time.monotonic()
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await agent.stop()
        elapsed = time.monotonic() - start
        assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes), outcomes
        assert elapsed < 2, f"cancel and stop took {elapsed:.2f} s"
        assert not runtime.tagged_processes(agent.process_tag)

        async with running_agent(home, model) as again:
            for i in range(3):
                assert await again.get_session(f"s-cancel-{i}") is not None
            result = await again.run_turn(turn("cancel-0", tmp_path, mode="resume"))
        assert result.summary == "resumed after the cancel"

    asyncio.run(scenario())


@pytest.mark.timing
@pytest.mark.integration
@real_cli
def test_a_turn_fails_soon_when_the_cli_dies_and_its_session_can_be_resumed(
    tmp_path: Path, model: OfflineModelServer
) -> None:
    home = tmp_path / "home"

    async def scenario() -> None:
        activity: list[str] = []
        async with running_agent(home, model) as agent:
            task = asyncio.create_task(agent.run_turn(turn("cli-dies", tmp_path, quiet=60, activity=activity)))
            events = home / "session-state" / "s-cli-dies" / "events.jsonl"
            # The CLI writes events lazily: killed before the first write, a session cannot be resumed.
            while "bash: sleep 30" not in activity or b"tool.execution_start" not in _read(events):
                await asyncio.sleep(0.05)
            for pid in runtime.tagged_processes(agent.process_tag):
                if "copilot" in " ".join(argv(pid)):
                    os.kill(pid, 9)
            start = time.monotonic()
            with pytest.raises(AgentError, match="Copilot CLI stopped during the turn"):
                await task
            assert time.monotonic() - start < 5
        async with running_agent(home, model) as agent:
            result = await agent.run_turn(turn("cli-dies", tmp_path, mode="resume"))
        assert result.summary == "resumed after the crash"

    asyncio.run(scenario())


@pytest.mark.integration
@real_cli
def test_stop_leaves_no_process_behind(tmp_path: Path, model: OfflineModelServer) -> None:
    async def scenario() -> None:
        agent = CopilotAgent(
            CLI, copilot_home=tmp_path / "home", model=OFFLINE_MODEL, provider=provider_config(model.base_url)
        )
        await agent.start()
        result = await agent.run_turn(turn("leftover", tmp_path))
        assert result.summary == "left a sleep running"
        tagged = runtime.tagged_processes(agent.process_tag)
        commands = {pid: argv(pid) for pid in tagged}
        sleeper = next(pid for pid, args in commands.items() if args[:2] == ["sleep", "300"])
        cli_sessions = {session_of(pid) for pid, args in commands.items() if "copilot" in " ".join(args[:2])}
        sessions = {session_of(pid) for pid in tagged} - {None}
        assert os.getsid(sleeper) not in cli_sessions, "the bash tool runs each command in a session of its own"
        await agent.stop()
        assert not alive(sleeper)
        assert not runtime.tagged_processes(agent.process_tag)
        assert not [pid for pid in live_processes() if session_of(pid) in sessions]

    asyncio.run(scenario())


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


@pytest.mark.integration
@real_cli
def test_list_sessions_filters_by_repository_and_branch(tmp_path: Path, model: OfflineModelServer) -> None:
    main, feature = tmp_path / "main", tmp_path / "feature"
    git(tmp_path, "init", "-q", "-b", "main", str(main))
    git(main, "remote", "add", "origin", "https://github.com/octo/demo.git")
    git(main, "commit", "-q", "--allow-empty", "-m", "start")
    git(main, "worktree", "add", "-q", "-b", "feature", str(feature))

    async def scenario() -> None:
        async with running_agent(tmp_path / "home", model) as agent:
            await agent.run_turn(turn("on-main", main))
            await agent.run_turn(turn("on-feature", feature))
            on_main = await agent.list_sessions("octo/demo", "main")
            in_repo = await agent.list_sessions("octo/demo", None)
            everywhere = await agent.list_sessions(None, None)
            elsewhere = await agent.list_sessions("octo/other", None)
        assert [s.session_id for s in on_main] == ["s-on-main"]
        assert (on_main[0].repository, on_main[0].branch, on_main[0].working_directory) == (
            "octo/demo",
            "main",
            str(main),
        )
        assert {s.session_id for s in in_repo} == {s.session_id for s in everywhere} == {"s-on-main", "s-on-feature"}
        assert elsewhere == []

    asyncio.run(scenario())


@pytest.mark.integration
@real_cli
def test_delete_session(tmp_path: Path, model: OfflineModelServer) -> None:
    async def scenario() -> None:
        async with running_agent(tmp_path / "home", model) as agent:
            await agent.run_turn(turn("to-delete", tmp_path))
            assert await agent.get_session("s-to-delete") is not None
            await agent.delete_session("s-to-delete")
            assert await agent.get_session("s-to-delete") is None
            with pytest.raises(SessionNotFound):
                await agent.delete_session("s-to-delete")

    asyncio.run(scenario())


@pytest.mark.integration
@real_cli
def test_every_sdk_call_of_a_turn_reports_its_timing(tmp_path: Path, model: OfflineModelServer) -> None:
    timings: list[SdkCallTiming] = []

    async def scenario() -> None:
        provider = provider_config(model.base_url)
        agent = CopilotAgent(CLI, tmp_path / "home", OFFLINE_MODEL, provider, on_sdk_call=timings.append)
        await agent.start()
        try:
            await agent.run_turn(turn("timed", tmp_path))
            await agent.run_turn(turn("timed", tmp_path, mode="resume"))
        finally:
            await agent.stop()

    asyncio.run(scenario())
    assert [(t.session_id, t.call) for t in timings] == [
        ("s-timed", "get_session_metadata"),
        ("s-timed", "create_session"),
        ("s-timed", "send"),
        ("s-timed", "disconnect"),
        ("s-timed", "resume_session"),
        ("s-timed", "send"),
        ("s-timed", "disconnect"),
    ]
    assert all(t.started <= t.ended for t in timings)
    assert all(earlier.ended <= later.started for earlier, later in itertools.pairwise(timings))


@pytest.mark.timing
@pytest.mark.integration
@real_cli
def test_a_terminal_ctrl_c_reaches_the_host_but_not_the_cli(tmp_path: Path) -> None:
    """SIGINT to the host's process group, as a terminal sends it: the host still aborts and stops cleanly."""
    host = textwrap.dedent(
        """
        import asyncio, json, os, signal, sys, time
        from functools import partial
        from pathlib import Path
        from planeteer_action.copilot import runtime
        from planeteer_action.engine.agent import TurnRequest
        from planeteer_action.copilot.agent import CopilotAgent
        from planeteer_action.copilot.offline_model import OFFLINE_MODEL, OfflineModelServer, provider_config

        cli, home, workdir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a terminal's host, whatever this suite inherited

        def request(mode):
            prompt = "Planeteer task id: ctrl-c"
            return TurnRequest("s-ctrl-c", "ctrl-c", prompt, mode, workdir, 60, partial(print, flush=True))

        async def main():
            model = OfflineModelServer(script={"ctrl-c": [{"bash": "sleep 30"}, {"text": "resumed"}]})
            provider = provider_config(model.start())
            agent = CopilotAgent(cli, copilot_home=home, model=OFFLINE_MODEL, provider=provider)
            await agent.start()
            groups = [[os.getpgid(p), os.getsid(p)] for p in runtime.tagged_processes(agent.process_tag)]
            print(json.dumps({"host": [os.getpgrp(), os.getsid(0)], "cli": groups}), flush=True)
            task = asyncio.create_task(agent.run_turn(request("create")))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                alive = bool(runtime.tagged_processes(agent.process_tag))
                print("cli alive after ctrl-c:", alive, flush=True)
                start = time.monotonic()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await agent.stop()
                print("stopped in", round(time.monotonic() - start, 2), flush=True)
            again = CopilotAgent(cli, copilot_home=home, model=OFFLINE_MODEL, provider=provider)
            await again.start()
            print("resume:", (await again.run_turn(request("resume"))).summary, flush=True)
            await again.stop()
            model.stop()

        asyncio.run(main())
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", host, str(CLI), str(tmp_path / "home"), str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("bash: sleep 30"):
                break
        groups = json.loads(lines[0])
        assert groups["cli"], lines
        for group, session in groups["cli"]:
            assert group != groups["host"][0] and session != groups["host"][1]
        os.killpg(process.pid, 2)
        output, _ = process.communicate(timeout=60)
        lines += output.splitlines()
    finally:
        process.kill()
        process.wait()
    assert "cli alive after ctrl-c: True" in lines, lines
    stopped = next(line for line in lines if line.startswith("stopped in"))
    assert float(stopped.split()[-1]) < 2, lines
    assert "resume: resumed" in lines, lines
