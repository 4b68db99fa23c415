"""The executor gives each task's session its own rules, records them by name and hash, counts denials; a
resume shows how the rules changed since the session started. On the in-memory agent (no SDK here)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from memory_agent import Behaviour, MemoryAgent
from rich.console import Console

from planeteer_action.cli.display import JsonLines, LineLog, LiveView
from planeteer_action.cli.main import main
from planeteer_action.cli.run import _ask_recovery
from planeteer_action.engine.events import Event, Listener, ToolDenied
from planeteer_action.engine.executor import Executor, ExecutorOptions
from planeteer_action.engine.recovery import RecoveryReport, UnfinishedTask, apply_choice, inspect
from planeteer_action.engine.rules import ToolPattern
from planeteer_action.plan.model import Execution, Plan
from planeteer_action.plan.store import BackgroundPlanWriter, load_plan, save_plan
from planeteer_action.rules.record import changes_since_started
from planeteer_action.rules.resolve import PlanRules, RuleOptions, load_rules
from planeteer_action.rules.settings_file import RuleLayer

SECRET = "mcp-secret-token-0123456789"


def write_plan(path: Path) -> Path:
    data = {
        "id": "p",
        "name": "rules",
        "tasks": [
            {"id": "api", "title": "API", "model": "gpt-4.1", "denyTools": ["shell(rm)"], "env": {"API_URL": "u"}},
            {"id": "ui", "title": "UI", "dependsOn": ["api"]},
        ],
    }
    path.write_text(json.dumps(data, indent=2))
    return path


def mcp_config(folder: Path) -> Path:
    config = folder / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"db": {"command": "db", "args": ["--token", "${DB_TOKEN}"]}}}))
    return config


def run(plan: Plan, path: Path, agent: MemoryAgent, rules: PlanRules) -> tuple[list[Event], str]:
    """Run it with every view listening: the events, and what the JSON lines, the log and the terminal showed."""
    events: list[Event] = []
    out = io.StringIO()
    live = LiveView(plan, Console(file=out, width=200))
    saver = BackgroundPlanWriter(path)
    listeners: list[Listener] = [events.append, JsonLines(out), LineLog(out), live]
    executor = Executor(plan, agent, ExecutorOptions(path.parent, rules=rules), saver, listeners)
    asyncio.run(executor.run())
    live.close()
    saver.close()
    shown = out.getvalue()
    assert SECRET not in shown and SECRET not in path.read_text()
    return events, shown


def test_each_session_gets_its_tasks_rules_and_each_denial_is_counted_shown_and_saved(tmp_path: Path) -> None:
    path = write_plan(tmp_path / "plan.json")
    layer = RuleLayer(model="gpt-5", deny_tools=("shell(git push)",))
    options = RuleOptions(layer=layer, mcp_config=mcp_config(tmp_path))
    rules = load_rules(load_plan(path), tmp_path, options, {"DB_TOKEN": SECRET})
    agent = MemoryAgent(behaviours={"api": Behaviour(denied=("shell(git push origin main)", "shell(rm -rf /)"))})
    events, shown = run(load_plan(path), path, agent, rules)

    api, ui = agent.requests
    assert api.rules.model == "gpt-4.1" and ui.rules.model == "gpt-5"
    assert api.rules.deny_tools == (ToolPattern("shell", "git push"), ToolPattern("shell", "rm"))
    assert ui.rules.deny_tools == (ToolPattern("shell", "git push"),)
    assert api.rules.env == {"API_URL": "u"} and ui.rules.env == {}
    assert api.rules.mcp_servers["db"]["args"] == ["--token", SECRET]  # in memory, for the session only
    denied = [e for e in events if isinstance(e, ToolDenied)]
    assert [(e.task_id, e.description, e.denied) for e in denied] == [
        ("api", "shell(git push origin main)", 1),
        ("api", "shell(rm -rf /)", 2),
    ]
    saved = load_plan(path)
    assert (saved.task("api").denied_requests, saved.task("ui").denied_requests) == (2, 0)
    record = saved.task("api").attempts[0].rules
    assert record is not None and record.model == "gpt-4.1" and list(record.mcp_servers) == ["db"]
    assert record.deny_tools == ["shell(git push)", "shell(rm)"] and record.env_names == ["API_URL"]
    assert '"deniedRequests": 2' in path.read_text()
    status = CliRunner().invoke(main, ["status", "--json", str(path)])
    assert json.loads(status.stdout)["tasks"][0]["deniedRequests"] == 2
    assert "Denied" in CliRunner().invoke(main, ["status", str(path)]).stdout
    lines = shown.splitlines()
    assert any(line.endswith("task api: DENIED shell(rm -rf /) (it did not run; 2 denied so far)") for line in lines)
    assert sum('"event": "tool_denied"' in line for line in lines) == 2
    header = next(line for line in lines if line.lstrip().startswith("Task"))
    assert header.replace("┃", " ").split() == ["Task", "Status", "Time", "Session", "Denied", "Result"]
    api_row = next(line for line in lines if line.startswith("api ")).replace("│", " ").split()
    assert api_row[:2] == ["api", "done"] and api_row[4:6] == ["2", "did"]


def test_a_run_without_rules_leaves_the_plan_as_before(tmp_path: Path) -> None:
    path = write_plan(tmp_path / "plan.json")
    data = json.loads(path.read_text())
    data["tasks"] = [{"id": "a", "title": "A"}]
    path.write_text(json.dumps(data, indent=2))
    _, shown = run(load_plan(path), path, MemoryAgent(), load_rules(load_plan(path), tmp_path, RuleOptions(), {}))
    assert "Denied" not in shown
    attempt = json.loads(path.read_text())["tasks"][0]["attempts"][0]
    assert "rules" not in attempt and "deniedRequests" not in json.loads(path.read_text())["tasks"][0]


def test_a_resume_shows_and_records_how_the_rules_changed_since_the_session_started(tmp_path: Path) -> None:
    path = write_plan(tmp_path / "plan.json")
    agent = MemoryAgent(behaviours={"api": Behaviour(hang=True)})
    plan = load_plan(path)
    before = load_rules(plan, tmp_path, RuleOptions(layer=RuleLayer(deny_tools=("shell(git push)",))), {})
    executor = Executor(plan, agent, ExecutorOptions(tmp_path, rules=before), _Saver(path), [])

    async def interrupted() -> None:
        running = asyncio.create_task(executor.run())
        while not agent.running:
            await asyncio.sleep(0.001)
        executor.interrupt()
        await running

    asyncio.run(interrupted())
    plan = load_plan(path)
    assert plan.task("api").status == "interrupted"
    after = load_rules(plan, tmp_path, RuleOptions(layer=RuleLayer(model="gpt-5")), {})

    async def recover() -> list[str]:
        report = await inspect(plan, agent, None, None)
        changed = changes_since_started(plan, after, report)
        assert changed == {"api": ["deny -shell(git push)"]}  # the task's own model wins: no model change
        recovery = await apply_choice(plan, replace(report, rules_changed=changed), "resume", agent)
        return recovery.rules_changed["api"]

    plan.execution = plan.execution or Execution()
    assert asyncio.run(recover()) == ["deny -shell(git push)"]
    save_plan(plan, path)
    status = CliRunner().invoke(main, ["status", str(path)])
    assert "api's rules changed since its session started: deny -shell(git push)" in status.stdout

    agent.behaviours.clear()
    asyncio.run(Executor(plan, agent, ExecutorOptions(tmp_path, rules=after), _Saver(path), []).run())
    resumed = next(r for r in agent.requests if r.mode == "resume")
    assert resumed.session_id == plan.task("api").attempts[0].session_id
    assert resumed.rules == after.session_rules(plan.task("api"))  # the resumed session is given its rules again
    assert plan.task("api").attempts[-1].rules == after.record(plan.task("api"))


def test_a_recovery_question_shows_the_changed_rules(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    found = UnfinishedTask("api", "interrupted", "planeteer-x-api-a1", "resumable", None)
    report = RecoveryReport([found], [], rules_changed={"api": ["deny -shell(git push)", "model a -> b"]})
    monkeypatch.setattr("click.prompt", lambda *args, **kwargs: "r")
    assert _ask_recovery(report) == "resume"
    shown = " ".join(capsys.readouterr().err.split())
    assert "api: its rules changed since its session started: deny -shell(git push); model a -> b" in shown


class _Saver:
    def __init__(self, path: Path) -> None:
        self._path = path

    async def save(self, plan: Plan, changed: Collection[str] | None) -> None:
        save_plan(plan, self._path)

    def save_blocking(self, plan: Plan, changed: Collection[str] | None) -> None:
        save_plan(plan, self._path)
