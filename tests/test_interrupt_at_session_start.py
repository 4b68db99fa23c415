"""A signal in the first instants of a task's session never turns into a task done without its work.

Between "started in session" and the task prompt reaching the session there are a few tens of
milliseconds in which the session exists but holds no task. On the real Copilot CLI, this signals a run
at many instants 0-100 ms after a task first starts (SIGINT and SIGKILL), then runs again: every task
must end done with the model having been given its full task prompt (description, plan context,
dependency results), not only the short continuation.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from harness import copilot_cli, make_repo, make_workspace, runtime_processes, user_messages
from helpers import git, wait_for

from planeteer_action.copilot.agent import CopilotAgent
from planeteer_action.copilot.offline_model import OfflineModelServer, note_path, provider_config
from planeteer_action.engine.agent import TurnRequest
from planeteer_action.worktrees.names import integration_branch

pytestmark = pytest.mark.integration

DELAYS_MS = range(0, 101, 10)


def _signal_after_first_start(process: subprocess.Popen[str], signum: int, delay: float) -> str | None:
    """Signal the run `delay` seconds after its first `task_started` of a task's first attempt.

    Returns that task's id, or None when the run ended without starting one.
    """
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = lines.get(timeout=deadline - time.monotonic())
        if line is None:
            return None
        event = json.loads(line)
        if event["event"] == "task_started" and event["reason"] == "first start":
            time.sleep(delay)
            os.killpg(process.pid, signum)
            return str(event["task_id"])
    raise AssertionError("no task started within 60 s")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_signal_just_after_a_session_starts_never_loses_the_task_prompt(tmp_path: Path, signum: int) -> None:
    # A chain, so that each run resumes the task the previous run's signal hit, then starts the next one
    # (with the results it depends on in its prompt) and is signalled in turn.
    chain = [f"t{i}" for i in range(len(DELAYS_MS) + 1)]
    edges = {task: chain[i - 1 : i] for i, task in enumerate(chain)}
    server = OfflineModelServer()
    server.start()
    ws = make_workspace(tmp_path, server, edges)
    hit: list[tuple[str, int]] = []
    try:
        for delay_ms in DELAYS_MS:
            run = ws.start("run", "--json")
            task = _signal_after_first_start(run, signum, delay_ms / 1000)
            _, stderr = run.communicate(timeout=30)
            assert run.returncode in (-signal.SIGKILL, 130, 0), stderr
            if task is not None:
                hit.append((task, delay_ms))
            wait_for(lambda: not runtime_processes(), timeout=15, what="the Copilot CLI to shut down")

        final = ws.run("run")
        assert final.returncode == 0, final.stderr
        plan = ws.load()
        assert len(hit) == len(DELAYS_MS), hit
        merged = git(ws.repo, "ls-tree", "-r", "--name-only", integration_branch(plan.id)).split()
        without_prompt = []
        for i, task_id in enumerate(chain):
            done = plan.task(task_id)
            assert done.status == "done", (task_id, done.status)
            assert note_path(task_id) in merged, f"{task_id} is done without its note"
            # The request that finished the task carried the whole task prompt in its conversation.
            conversation = "\n".join(user_messages(server.requests_for(task_id)[-1]))
            needed = [f"Do {task_id}.", "## Plan context", *([f"Completed {chain[i - 1]}: wrote"] if i else [])]
            if not all(text in conversation for text in needed):
                without_prompt.append((task_id, dict(hit).get(task_id), [a.reason for a in done.attempts]))
        assert not without_prompt, f"done without the task prompt (task, ms, attempts): {without_prompt}"
        # Some signal must have landed inside the window (on the old code it did at 10-50 ms), else this test
        # proved nothing; those tasks were given their prompt in their own session.
        resent = [t for t in plan.tasks if any("with the full task prompt" in a.reason for a in t.attempts)]
        assert resent, f"no signal landed before a task prompt was delivered: {hit}"
        assert all(t.session_id == t.attempts[0].session_id for t in resent)
    finally:
        server.stop()


def test_the_user_messages_are_read_from_the_stored_session(tmp_path: Path) -> None:
    """What the resume check reads: the real CLI's stored conversation, a line torn by a kill skipped."""
    repo, home, session_id = make_repo(tmp_path / "repo"), tmp_path / "home", "planeteer-00000000-t-a1"
    prompt = "Planeteer task id: t\nDo t."

    async def scenario() -> list[list[str] | None]:
        with OfflineModelServer() as server:
            agent = CopilotAgent(Path(copilot_cli()), home, "scripted", provider_config(server.base_url))
            await agent.start()
            try:
                await agent.run_turn(TurnRequest(session_id, "t", prompt, "create", repo, 60, lambda _: None))
                with (home / "session-state" / session_id / "events.jsonl").open("a") as events:
                    events.write('{"type":"user.message","data":{"content":"torn')
                return [await agent.user_messages(s) for s in (session_id, "planeteer-00000000-t-a2", "../t")]
            finally:
                await agent.stop()

    assert asyncio.run(scenario()) == [[prompt], None, None]
