"""Sessions under a task's rules, on the real Copilot CLI with the scripted offline model: denials that never
run and that the agent hears about (its sub-agents' requests too, and after a resume in a new CLI process),
writes kept in the worktree, an MCP server started and called, skills and a custom agent given to the
session, and a task's variables in its own shell only. The rules are built here directly (rules/ resolves
them from the plan and settings).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import CLI, make_repo, running_agent, turn_request
from helpers import git

from planeteer_action.copilot import runtime
from planeteer_action.copilot.offline_model import OfflineModelServer
from planeteer_action.engine.rules import SessionRules, ToolPattern

REPO = Path(__file__).resolve().parents[1]
MCP_SERVER = Path(__file__).with_name("mcp_stdio_server.py")
TASK_SECRET = "task-only-value-8c2f"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CLI.exists(), reason=f"no Copilot CLI at {CLI}: {runtime.INSTALL_COMMAND}"),
]

PUSH = "git push origin HEAD:main && touch pushed-marker"
SUB_AGENT = {"name": "pusher", "description": "Push it", "prompt": "Planeteer task id: sub-agent", "agent_type": "task"}
SCRIPT: dict[str, list[dict[str, Any]]] = {
    "guarded": [
        {"bash": PUSH},
        {"create": {"path": "OUTSIDE", "file_text": "escaped\n"}},  # the path is filled in by the test
        {"create": {"path": "INSIDE", "file_text": "kept\n"}},
        {"tool": {"name": "task", "arguments": SUB_AGENT}},
        {"text": "first turn done"},
        {"bash": PUSH},
        {"text": "second turn done"},
    ],
    "sub-agent": [{"bash": PUSH}, {"text": "the sub-agent could not push"}],
    "extras": [{"tool": {"name": "tiny-shout", "arguments": {"text": "hello"}}}, {"text": "shouted"}],
    # The value in two halves, so that the whole of it appears nowhere but in the task's variables.
    "env-a": [{"bash": 'test "${TASK_VAR%-8c2f}" = task-only-value && echo "task-a sees its variable"'}, {"text": "a"}],
    "env-b": [{"bash": 'echo "task-b sees [${TASK_VAR-nothing}]"'}, {"text": "b done"}],
}


# These turns may sit quiet for long under load (a sub-agent, an MCP server starting): 60 s, as before.
turn = functools.partial(turn_request, quiet=60)


@pytest.fixture
def model(tmp_path: Path) -> Iterator[OfflineModelServer]:
    script = json.loads(
        json.dumps(SCRIPT)
        .replace('"OUTSIDE"', json.dumps(str(tmp_path / "outside.txt")))
        .replace('"INSIDE"', json.dumps(str(tmp_path / "repo" / "inside.txt")))
    )
    with OfflineModelServer(script=script) as server:
        yield server


def tool_answers(model: OfflineModelServer, task_id: str) -> list[str]:
    """What the agent got back from each of its tool calls, in order (the last request holds them all)."""
    return [m.get("content", "") for m in model.requests_for(task_id)[-1]["messages"] if m["role"] == "tool"]


def patterns(*texts: str) -> tuple[ToolPattern, ...]:
    return tuple(map(ToolPattern.parse, texts))


def test_denied_requests_never_run_the_agent_is_told_and_a_resumed_session_keeps_its_denials(
    tmp_path: Path, model: OfflineModelServer
) -> None:
    repo = make_repo(tmp_path / "repo")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", str(remote))
    git(repo, "remote", "set-url", "origin", str(remote))
    rules = SessionRules(deny_tools=patterns("shell(git push)"))
    first: list[str] = []
    second: list[str] = []

    async def scenario() -> None:
        async with running_agent(tmp_path / "home", model) as agent:
            result = await agent.run_turn(turn("guarded", repo, rules=rules, denied=first))
            assert result.summary == "first turn done"
        async with running_agent(tmp_path / "home", model) as agent:  # a new CLI process, as after a restart
            result = await agent.run_turn(turn("guarded", repo, rules=rules, denied=second, mode="resume"))
            assert result.summary == "second turn done"

    asyncio.run(scenario())
    push = "shell(git push origin HEAD:main)"
    outside = f"write {(tmp_path / 'outside.txt').resolve()} (outside the task's worktree)"
    assert (first, second) == ([push, outside, push], [push]), "a sub-agent's requests are the session's"
    assert not (repo / "pushed-marker").exists() and git(remote, "for-each-ref") == ""
    assert not (tmp_path / "outside.txt").exists() and (repo / "inside.txt").read_text() == "kept\n"
    answers = tool_answers(model, "guarded")
    assert len(answers) == 5
    assert f"Planeteer denied {push}: the rules deny `shell(git push)`" in answers[0]
    assert f"Planeteer denied {outside}: files may be written only inside" in answers[1]
    assert "Created file" in answers[2]
    assert "the sub-agent could not push" in answers[3]
    assert f"Planeteer denied {push}" in answers[4]
    assert f"Planeteer denied {push}" in tool_answers(model, "sub-agent")[0]


def test_the_session_gets_its_mcp_servers_skills_and_custom_agent_and_no_disabled_skill(
    tmp_path: Path, model: OfflineModelServer
) -> None:
    repo = make_repo(tmp_path / "repo")
    for name in ("enabled-skill", "disabled-skill"):
        folder = repo / ".github" / "skills" / name
        folder.mkdir(parents=True)
        (folder / "SKILL.md").write_text(f"---\nname: {name}\ndescription: The {name} of this test\n---\n\nSteps.\n")
    (repo / ".github" / "agents").mkdir()
    (repo / ".github" / "agents" / "reviewer.agent.md").write_text(
        "---\nname: reviewer\ndescription: Reviews changes\n---\n\nYou are the reviewer of this test.\n"
    )
    log = tmp_path / "mcp.log"
    server = {
        "command": sys.executable,
        "args": [str(MCP_SERVER)],
        "env": {"TINY_TOKEN": "x" * 12, "TINY_LOG": str(log)},
    }
    rules = SessionRules(
        mcp_servers={"tiny": server},
        allow_tools=patterns("tiny(shout)"),
        skill_directories=(repo / ".github" / "skills" / "enabled-skill",),
        agent="reviewer",
    )
    denied: list[str] = []

    async def scenario() -> None:
        async with running_agent(tmp_path / "home", model) as agent:
            await agent.run_turn(turn("extras", repo, rules=rules, denied=denied))

    asyncio.run(scenario())
    request = model.requests_for("extras")[0]
    assert "tiny-shout" in request["tools"]
    assert tool_answers(model, "extras") == ["HELLO (token seen)"] and denied == []
    methods = [json.loads(line).get("method") for line in log.read_text().splitlines()]
    assert {"initialize", "tools/list", "tools/call"} <= set(methods)
    assert "enabled-skill" in request["skills"] and "disabled-skill" not in request["skills"]
    assert request["agent_instructions"].endswith("You are the reviewer of this test.")


def test_a_tasks_variables_reach_its_own_shell_and_no_other_tasks(tmp_path: Path, model: OfflineModelServer) -> None:
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    # An allow list, so the test also shows that the command planeteer puts in front is not judged.
    with_variable = SessionRules(env={"TASK_VAR": TASK_SECRET}, allow_tools=patterns("shell(test)", "shell(echo)"))

    async def scenario() -> None:
        async with running_agent(home, model) as agent:
            await asyncio.gather(
                agent.run_turn(turn("env-a", repo, rules=with_variable)),
                agent.run_turn(turn("env-b", repo, rules=SessionRules())),
            )
            assert agent._private_dir is not None and list(agent._private_dir.glob("env-*")) == []

    asyncio.run(scenario())
    assert tool_answers(model, "env-a")[0].startswith("task-a sees its variable\n")
    assert tool_answers(model, "env-b")[0].startswith("task-b sees [nothing]")
    for task in ("env-a", "env-b"):
        assert TASK_SECRET not in (home / "session-state" / f"s-{task}" / "events.jsonl").read_text()
