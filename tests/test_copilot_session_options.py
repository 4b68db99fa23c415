"""What a task's session is opened with, from its rules, and the file and hook that give its shells their
variables: pure functions, no CLI (tests/test_copilot_rules.py runs them on the real one)."""

from __future__ import annotations

import stat
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from copilot.session import PreToolUseHookInput

from planeteer_action.copilot.permissions import PermissionPolicy
from planeteer_action.copilot.session_options import (
    agent_directories,
    raise_if_unknown_agent,
    secrets_of,
    session_options,
)
from planeteer_action.copilot.task_env import TaskEnvironment
from planeteer_action.engine.agent import AgentError, TurnRequest
from planeteer_action.engine.rules import SessionRules


def request(workdir: Path, session_rules: SessionRules) -> TurnRequest:
    return TurnRequest("s-1", "Task 1", "prompt", "create", workdir, 30, lambda _: None, rules=session_rules)


def options_for(workdir: Path, session_rules: SessionRules, hooks: Any = None) -> dict[str, Any]:
    permissions = PermissionPolicy(session_rules, workdir, lambda _: None, str)
    return session_options(
        request(workdir, session_rules),
        model="default-model",
        provider={"type": "openai", "base_url": "http://127.0.0.1:1/v1"},
        permissions=permissions,
        on_event=lambda _: None,
        hooks=hooks,
    )


def test_default_rules_add_nothing_to_the_session(tmp_path: Path) -> None:
    options = options_for(tmp_path, SessionRules())
    assert set(options) == {"model", "provider", "working_directory", "on_permission_request", "on_event"}
    assert options["model"] == "default-model" and options["working_directory"] == str(tmp_path)
    assert isinstance(options["on_permission_request"], PermissionPolicy)


def test_the_rules_settings_reach_the_session(tmp_path: Path) -> None:
    server = {"command": "python3", "args": ["server.py"], "env": {"TOKEN": "mcp-secret-value"}}
    session_rules = SessionRules(
        model="task-model",
        reasoning_effort="high",
        mcp_servers={"tiny": server},
        skill_directories=(tmp_path / "skills" / "alpha",),
    )
    options = options_for(tmp_path, session_rules)
    assert options["model"] == "task-model" and options["reasoning_effort"] == "high"
    assert options["mcp_servers"] == {"tiny": server} and options["mcp_servers"]["tiny"] is not server
    assert options["skill_directories"] == [str(tmp_path / "skills" / "alpha")]
    assert "agent" not in options and "hooks" not in options


def test_a_custom_agent_is_looked_up_in_github_agents_up_to_the_repository_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".github" / "agents").mkdir(parents=True)
    (repo / "app" / ".github" / "agents").mkdir(parents=True)
    (tmp_path / ".github" / "agents").mkdir(parents=True)  # above the repository: not looked at
    workdir = repo / "app" / "src"
    workdir.mkdir()
    assert agent_directories(workdir) == [repo / "app" / ".github" / "agents", repo / ".github" / "agents"]
    options = options_for(workdir, SessionRules(agent="reviewer"))
    assert options["agent"] == "reviewer"
    assert options["agent_directories"] == [str(p) for p in agent_directories(workdir)]


def test_an_unknown_custom_agent_says_where_it_was_looked_for(tmp_path: Path) -> None:
    session_rules = SessionRules(agent="reviewer")
    options = {"agent_directories": [str(tmp_path / ".github" / "agents")]}
    error = RuntimeError(
        "Request session.create failed: session construction failed: Custom agent 'reviewer' not found"
    )
    with pytest.raises(AgentError) as raised:
        raise_if_unknown_agent(request(tmp_path, session_rules), options, error)
    assert "'reviewer' was not found" in str(raised.value) and str(tmp_path) in str(raised.value)
    assert ".github/agents/reviewer.agent.md" in str(raised.value)
    raise_if_unknown_agent(request(tmp_path, SessionRules()), options, error)  # not ours to explain
    raise_if_unknown_agent(request(tmp_path, session_rules), options, RuntimeError("connection lost"))


def test_the_secrets_of_a_turn_are_its_env_and_mcp_env_and_header_values(tmp_path: Path) -> None:
    session_rules = SessionRules(
        env={"API_TOKEN": "task-secret-1"},
        mcp_servers={
            "a": {"command": "x", "env": {"K": "mcp-secret-2"}},
            "b": {"type": "http", "url": "https://mcp.example", "headers": {"Authorization": "Bearer h-3"}},
        },
    )
    assert secrets_of(request(tmp_path, session_rules)) == ["task-secret-1", "mcp-secret-2", "Bearer h-3"]


# --- the task's environment --------------------------------------------------------------------------------


def hook_input(tool: str, arguments: Any) -> PreToolUseHookInput:
    return {
        "sessionId": "s",
        "timestamp": datetime.now(),
        "workingDirectory": "/w",
        "toolName": tool,
        "toolArgs": arguments,
    }


def test_the_variables_file_is_private_quoted_and_gone_after_the_turn(tmp_path: Path) -> None:
    variables = {"GREETING": 'it\'s a "test" $HOME `x`', "EMPTY": ""}
    with TaskEnvironment(tmp_path, variables) as environment:
        (path,) = tmp_path.iterdir()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        shown = subprocess.run(
            ["bash", "-c", f'{environment.command}\nprintf "%s|%s" "$GREETING" "${{EMPTY-unset}}"'],
            capture_output=True,
            text=True,
            check=True,
        )
        assert shown.stdout == 'it\'s a "test" $HOME `x`|'
        assert environment.own_commands() == (environment.command,)
    assert list(tmp_path.iterdir()) == []


def test_the_hook_prefixes_shell_commands_only(tmp_path: Path) -> None:
    with TaskEnvironment(tmp_path, {"A": "1"}) as environment:
        hooks = environment.hooks()
        assert hooks is not None
        prefix = hooks["on_pre_tool_use"]
        changed = prefix(hook_input("bash", {"command": "echo $A", "description": "d"}), {})
        assert changed == {"modifiedArgs": {"command": f"{environment.command}\necho $A", "description": "d"}}
        assert prefix(hook_input("view", {"path": "/w/x"}), {}) is None
        assert prefix(hook_input("bash", "not a mapping"), {}) is None


def test_the_file_is_written_anew_before_each_command_and_not_after_the_turn(tmp_path: Path) -> None:
    """A command that rewrote the file would otherwise run, unjudged, before each of the task's later commands."""
    private = tmp_path / "private"
    private.mkdir()
    with TaskEnvironment(private, {"A": "1"}) as environment:
        hooks = environment.hooks()
        assert hooks is not None
        (path,) = private.iterdir()
        path.write_text("git push origin main\n")
        assert hooks["on_pre_tool_use"](hook_input("bash", {"command": "ls"}), {}) is not None
        assert path.read_text() == "export A=1\n" and list(private.iterdir()) == [path]
        path.unlink()
        private.rmdir()
        refused = hooks["on_pre_tool_use"](hook_input("bash", {"command": "ls"}), {})
        assert isinstance(refused, dict) and refused.get("permissionDecision") == "deny"
        assert "could not write the task's environment" in refused.get("permissionDecisionReason", "")
        private.mkdir()
    assert hooks["on_pre_tool_use"](hook_input("bash", {"command": "ls"}), {}) is None
    assert list(private.iterdir()) == []


def test_no_variables_means_no_file_and_no_hook(tmp_path: Path) -> None:
    with TaskEnvironment(tmp_path, {}) as environment:
        assert environment.hooks() is None and environment.own_commands() == ()
        assert list(tmp_path.iterdir()) == []


def test_a_variable_name_the_shell_cannot_take_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="'1BAD' is not a shell variable name"):
        TaskEnvironment(tmp_path, {"OK": "1", "1BAD": "x"})
