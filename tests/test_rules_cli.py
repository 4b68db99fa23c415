"""The agents' settings at the command line: `validate` lists every bad one (exit 2, nothing changed), `run`
refuses them before anything is written, `doctor` shows each task's effective rules without starting agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from harness import make_workspace

from planeteer_action.cli.main import main
from planeteer_action.copilot.offline_model import OfflineModelServer

SECRET = "doctor-must-not-show-this-9876"


def write_plan(folder: Path, tasks: list[dict[str, Any]], **extra: Any) -> Path:
    path = folder / "plan.json"
    path.write_text(json.dumps({"id": "p", "name": "n", "tasks": tasks, **extra}, indent=2))
    return path


BAD_TASKS: list[dict[str, Any]] = [
    {"id": "typo", "title": "t", "allowedTools": ["write"]},
    {"id": "model", "title": "t", "model": "gpt 5"},
    {"id": "pattern", "title": "t", "denyTools": ["shell(git push"]},
    {"id": "effort", "title": "t", "reasoningEffort": "extreme"},
    {"id": "env", "title": "t", "env": {"1X": "v", "PLANETEER_RUNTIME_TAG": "x"}},
    {"id": "agent", "title": "t", "agent": "my agent"},
]


def test_validate_names_every_bad_setting_on_its_own_line_and_exits_2(tmp_path: Path) -> None:
    path = write_plan(tmp_path, BAD_TASKS, skills=[{"name": "python", "enabled": True}])
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["validate", "--workdir", str(tmp_path), str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "planeteer: error: task 'typo': unknown setting 'allowedTools': did you mean 'allowTools'?",
        "planeteer: error: task 'model': model 'gpt 5' is not a model id: write it as Copilot lists it, e.g. gpt-5 "
        "or claude-sonnet-4.5",
        "planeteer: error: task 'pattern' denyTools: tool pattern 'shell(git push' is not `kind` or `kind(argument)`: "
        "write e.g. `shell(git push)` or `write`",
        "planeteer: error: task 'effort': reasoning effort 'extreme' is unknown: use one of low, medium, high, xhigh, "
        "max",
        "planeteer: error: task 'env' env: env name '1X' is not a variable name: use letters, digits and '_'",
        "planeteer: error: task 'env' env: env name 'PLANETEER_RUNTIME_TAG' is planeteer's own: choose another name",
        "planeteer: error: task 'agent': agent 'my agent' is not an agent name: use letters, digits, '.', '_' and '-'",
        f"planeteer: error: skill 'python' is enabled but there is no folder {tmp_path}/.github/skills/python: add "
        'it, pass --skills-dir, or set its "enabled" to false in the plan',
    ]
    assert path.read_bytes() == before
    as_json = CliRunner().invoke(main, ["validate", "--json", "--workdir", str(tmp_path), str(path)])
    assert as_json.exit_code == 2
    verdict = json.loads(as_json.stdout)
    assert verdict["valid"] is False and len(verdict["problems"]) == 8 and verdict["error"] == verdict["problems"][0]


def test_validate_checks_the_rule_options_given(tmp_path: Path) -> None:
    path = write_plan(tmp_path, [{"id": "a", "title": "t"}])
    result = CliRunner().invoke(main, ["validate", "--workdir", str(tmp_path), "--allow-tool", "shell(", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("planeteer: error: command line allowed tools: tool pattern 'shell(' is not")
    good = CliRunner().invoke(main, ["validate", "--workdir", str(tmp_path), "--deny-tool", "shell(rm)", str(path)])
    assert good.exit_code == 0, good.output


def test_run_refuses_bad_rules_before_writing_anything(tmp_path: Path) -> None:
    path = write_plan(tmp_path, BAD_TASKS[:2])
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["run", "--offline", "--workdir", str(tmp_path), str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "planeteer: error: task 'typo': unknown setting 'allowedTools': did you mean 'allowTools'? "
        "(and 1 more: `planeteer validate` lists them)"
    ]
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_doctor_lists_each_tasks_effective_rules_by_name_only(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / ".planeteer").mkdir()
    (tmp_path / ".planeteer" / "settings.json").write_text(json.dumps({"model": "claude-sonnet-4", "ui": 1}))
    (tmp_path / ".github" / "skills" / "python").mkdir(parents=True)
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"db": {"command": "db", "env": {"TOKEN": "${DOCTOR_TOKEN}"}}}}))
    tasks: list[dict[str, Any]] = [
        {"id": "api", "title": "t", "model": "gpt-5", "env": {"API_URL": "http://x"}, "allowTools": ["write"]},
        {"id": "ui", "title": "t", "reasoningEffort": "high"},
    ]
    path = write_plan(tmp_path, tasks, skills=[{"name": "python", "enabled": True}, {"name": "web", "enabled": False}])
    monkeypatch.setenv("DOCTOR_TOKEN", SECRET)
    extra = tmp_path / "cache"
    extra.mkdir()
    flags = ["--workdir", str(tmp_path), "--plan", str(path), "--deny-tool", "shell(git push)", "--add-dir", str(extra)]
    flags.append("--mcp-config")
    result = CliRunner().invoke(main, ["doctor", "--json", *flags, str(config)])
    assert SECRET not in result.output
    report = json.loads(result.stdout)
    assert report["tasks"] == [
        {
            "id": "api",
            "allowTools": ["write"],
            "denyTools": ["shell(git push)"],
            "mcpServers": ["db"],
            "skills": ["python"],
            "model": "gpt-5",
            "reasoningEffort": None,
            "agent": None,
            "env": ["API_URL"],
            "writableDirectories": [str(extra)],
        },
        {
            "id": "ui",
            "allowTools": [],
            "denyTools": ["shell(git push)"],
            "mcpServers": ["db"],
            "skills": ["python"],
            "model": "claude-sonnet-4",
            "reasoningEffort": "high",
            "agent": None,
            "env": [],
            "writableDirectories": [str(extra)],
        },
    ]
    text = CliRunner().invoke(main, ["doctor", *flags, str(config)])
    assert (
        "     ui: model claude-sonnet-4; effort high; agent default; allow -; deny shell(git push); MCP servers db; "
        f"skills python; env none; writes in the worktree, {extra}"
    ) in text.stdout.splitlines()
    assert SECRET not in text.output


def test_doctor_fails_the_rules_check_when_an_mcp_variable_is_unset(tmp_path: Path, monkeypatch: Any) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"db": {"command": "db", "args": ["${UNSET_FOR_DOCTOR}"]}}}))
    monkeypatch.delenv("UNSET_FOR_DOCTOR", raising=False)
    path = write_plan(tmp_path, [{"id": "a", "title": "t"}])
    result = CliRunner().invoke(
        main, ["doctor", "--json", "--workdir", str(tmp_path), "--plan", str(path), "--mcp-config", str(config)]
    )
    assert result.exit_code == 2
    check = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "agent rules")
    assert check["ok"] is False and "uses ${UNSET_FOR_DOCTOR}, which is not set" in check["detail"]


@pytest.mark.integration
def test_a_real_run_records_each_attempts_rules_by_name(tmp_path: Path) -> None:
    with OfflineModelServer() as model:
        ws = make_workspace(tmp_path, model, {"api": []})
        data = json.loads(ws.plan.read_text())
        data["tasks"][0]["allowTools"] = ["shell(npm test)"]
        ws.plan.write_text(json.dumps(data, indent=2))
        result = ws.run("run", "--isolation", "shared", "--deny-tool", "shell(git push)")
    assert result.returncode == 0, result.stderr
    record = ws.load().task("api").attempts[0].rules
    assert record is not None
    assert (record.model, record.allow_tools, record.deny_tools) == (
        "scripted",
        ["shell(npm test)"],
        ["shell(git push)"],
    )
