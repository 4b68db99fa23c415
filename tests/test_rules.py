"""Each task's rules from its sources: the task, the command line, `.planeteer/settings.json`, the MCP
configuration and the plan's skills; what the plan records of them, and how a change is described."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from planeteer_action.engine.rules import ToolPattern
from planeteer_action.errors import ConfigError
from planeteer_action.plan.model import Plan, RulesRecord
from planeteer_action.rules.mcp import expand, parse_mcp_config
from planeteer_action.rules.record import rules_changes
from planeteer_action.rules.resolve import RuleOptions, RulesInvalid, load_rules, rule_problems
from planeteer_action.rules.settings_file import RuleLayer

SECRET = "s3cret-value-from-the-environment"


def plan(tasks: list[dict[str, Any]], **extra: Any) -> Plan:
    return Plan.model_validate({"id": "p", "name": "n", "tasks": tasks, **extra})


def settings(workdir: Path, data: Any) -> None:
    (workdir / ".planeteer").mkdir(exist_ok=True)
    (workdir / ".planeteer" / "settings.json").write_text(data if isinstance(data, str) else json.dumps(data))


def test_the_nearest_setting_wins_task_then_command_line_then_settings_file(tmp_path: Path) -> None:
    settings(tmp_path, {"model": "from-settings", "reasoningEffort": "low", "agent": "settings-agent"})
    options = RuleOptions(layer=RuleLayer(model="from-flag", reasoning_effort="medium"))
    tasks = plan(
        [
            {"id": "own", "title": "t", "model": "own-model", "reasoningEffort": "high", "agent": "own-agent"},
            {"id": "plain", "title": "t"},
        ]
    ).tasks
    rules = load_rules(plan([]), tmp_path, options, {})
    own, plain = rules.session_rules(tasks[0]), rules.session_rules(tasks[1])
    assert (own.model, own.reasoning_effort, own.agent) == ("own-model", "high", "own-agent")
    assert (plain.model, plain.reasoning_effort, plain.agent) == ("from-flag", "medium", "settings-agent")
    only_settings = load_rules(plan([]), tmp_path, RuleOptions(), {}).session_rules(tasks[1])
    assert (only_settings.model, only_settings.reasoning_effort) == ("from-settings", "low")


def test_tool_patterns_add_up_across_the_sources_and_env_is_the_tasks_own(tmp_path: Path) -> None:
    settings(tmp_path, {"allowTools": ["shell(npm test)"], "denyTools": ["shell(rm)"]})
    options = RuleOptions(layer=RuleLayer(allow_tools=("write",), deny_tools=("shell(git push)", "shell(rm)")))
    task = plan([{"id": "a", "title": "t", "denyTools": ["url"], "env": {"API_URL": "http://x"}}]).tasks[0]
    rules = load_rules(plan([]), tmp_path, options, {}).session_rules(task)
    assert rules.allow_tools == (ToolPattern("shell", "npm test"), ToolPattern("write"))
    assert rules.deny_tools == (ToolPattern("shell", "rm"), ToolPattern("shell", "git push"), ToolPattern("url"))
    assert rules.env == {"API_URL": "http://x"}


def test_the_settings_file_is_the_tuis_its_other_keys_are_ignored(tmp_path: Path) -> None:
    settings(tmp_path, {"model": "claude-sonnet-4", "theme": "dark", "history": [1, 2]})
    assert rule_problems(plan([]), tmp_path, RuleOptions()) == []
    task = plan([{"id": "a", "title": "t"}]).tasks[0]
    assert load_rules(plan([]), tmp_path, RuleOptions(), {}).session_rules(task).model == "claude-sonnet-4"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{oops", "settings.json:1:2: malformed JSON"),
        ("[1]", "settings.json: expected a JSON object"),
        ({"model": 5}, "settings.json: model must be a string"),
        ({"model": "gpt 5"}, "settings.json: model 'gpt 5' is not a model id"),
        ({"denyTools": "shell(rm)"}, "settings.json: denyTools must be an array of tool patterns"),
        ({"allowTools": ["shell("]}, "settings.json allowTools: tool pattern 'shell(' is not"),
        ({"reasoningEffort": "extreme"}, "settings.json: reasoning effort 'extreme' is unknown: use one of low,"),
    ],
)
def test_a_bad_settings_file_is_one_line_naming_it(tmp_path: Path, content: Any, problem: str) -> None:
    settings(tmp_path, content)
    problems = rule_problems(plan([]), tmp_path, RuleOptions())
    assert len(problems) == 1 and problem in problems[0], problems
    with pytest.raises(RulesInvalid):
        load_rules(plan([]), tmp_path, RuleOptions(), {})


def test_mcp_variables_come_from_the_environment_and_are_listed_for_masking(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    server = {"command": "db-server", "args": ["--token", "${DB_TOKEN}"], "env": {"URL": "https://${HOST}/x"}}
    config.write_text(json.dumps({"mcpServers": {"db": server, "web": {"type": "http", "url": "https://w"}}}))
    options = RuleOptions(mcp_config=config)
    rules = load_rules(plan([]), tmp_path, options, {"DB_TOKEN": SECRET, "HOST": "db.internal"})
    assert rules.mcp.servers["db"]["args"] == ["--token", SECRET]
    assert rules.mcp.servers["db"]["env"] == {"URL": "https://db.internal/x"}
    assert set(rules.mcp.secrets) == {SECRET, "db.internal"}
    assert SECRET not in repr(rules.mcp)
    other = load_rules(plan([]), tmp_path, options, {"DB_TOKEN": "another-value", "HOST": "db.internal"})
    assert other.mcp.hashes == rules.mcp.hashes  # hashed before expansion: a rotated secret is no change


def test_an_unset_mcp_variable_is_named_and_no_value_is_shown(tmp_path: Path) -> None:
    servers = parse_mcp_config(json.dumps({"mcpServers": {"db": {"command": "x", "args": ["${MISSING}"]}}}), "c")
    with pytest.raises(ConfigError) as caught:
        expand(servers, {"OTHER": SECRET}, "MCP config c")
    assert str(caught.value).startswith("MCP config c: server 'db' uses ${MISSING}, which is not set: set it")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "malformed JSON"),
        ('{"servers": {}}', 'expected an object with "mcpServers"'),
        ('{"mcpServers": {"a": 1}}', "server 'a': expected an object with `command`"),
        ('{"mcpServers": {"a": {"args": []}}}', "server 'a': `command` (a string) is missing"),
        ('{"mcpServers": {"a": {"type": "http"}}}', "server 'a': `url` (a string) is missing"),
        ('{"mcpServers": {"a": {"type": "pipe", "command": "x"}}}', "server 'a': type 'pipe' is unknown"),
        ('{"mcpServers": {"a": {"command": "x", "env": {"K": 1}}}}', "server 'a': `env` must be an object of strings"),
    ],
)
def test_a_bad_mcp_config_is_one_line(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_mcp_config(text, "input `mcp-config`")
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_enabled_skills_are_found_in_the_repository_then_skills_dirs_and_disabled_ones_never(tmp_path: Path) -> None:
    (tmp_path / ".github" / "skills" / "python").mkdir(parents=True)
    (tmp_path / ".github" / "skills" / "python" / "SKILL.md").write_text("python")
    extra = tmp_path / "more"
    (extra / "docs").mkdir(parents=True)
    skills = [{"name": "python", "enabled": True}, {"name": "docs", "enabled": True}, {"name": "web", "enabled": False}]
    the_plan = plan([{"id": "a", "title": "t"}], skills=skills)
    rules = load_rules(the_plan, tmp_path, RuleOptions(skills_dirs=(extra,)), {})
    found = rules.session_rules(the_plan.tasks[0]).skill_directories
    assert found == ((tmp_path / ".github/skills/python").resolve(), (extra / "docs").resolve())
    before = rules.record(the_plan.tasks[0])
    (tmp_path / ".github" / "skills" / "python" / "SKILL.md").write_text("python, edited")
    after = load_rules(the_plan, tmp_path, RuleOptions(skills_dirs=(extra,)), {}).record(the_plan.tasks[0])
    assert rules_changes(before, after) == ["skill python changed"]


def test_a_missing_enabled_skill_is_a_problem_naming_where_it_was_looked_for(tmp_path: Path) -> None:
    the_plan = plan([], skills=[{"name": "python", "enabled": True}, {"name": "../up", "enabled": True}])
    problems = rule_problems(the_plan, tmp_path, RuleOptions())
    assert problems == [
        f"skill 'python' is enabled but there is no folder {tmp_path}/.github/skills/python: add it, pass "
        '--skills-dir, or set its "enabled" to false in the plan',
        "skill '../up': not a folder name: use letters, digits, '.', '_' and '-'",
    ]


def test_added_folders_are_writable_for_every_task_and_recorded(tmp_path: Path) -> None:
    extra = tmp_path / "cache"
    extra.mkdir()
    task = plan([{"id": "a", "title": "t"}]).tasks[0]
    rules = load_rules(plan([]), tmp_path, RuleOptions(writable_dirs=(extra,)), {})
    assert rules.session_rules(task).writable_directories == (extra,)
    record = rules.record(task)
    assert record is not None and record.writable_directories == [str(extra)]
    assert rules_changes(record, None) == [f"writable -{extra}"]


def test_a_task_without_any_rule_records_nothing(tmp_path: Path) -> None:
    task = plan([{"id": "a", "title": "t"}]).tasks[0]
    assert load_rules(plan([]), tmp_path, RuleOptions(), {}).record(task) is None


def test_the_record_keeps_names_and_hashes_never_values(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"db": {"command": "x", "env": {"TOKEN": "${DB_TOKEN}"}}}}))
    task = plan([{"id": "a", "title": "t", "env": {"API_KEY": "task-env-value-123"}, "denyTools": ["write"]}]).tasks[0]
    rules = load_rules(plan([]), tmp_path, RuleOptions(mcp_config=config), {"DB_TOKEN": SECRET})
    record = rules.record(task)
    assert record is not None
    text = json.dumps(record.to_json_dict())
    assert SECRET not in text and "task-env-value-123" not in text
    assert record.deny_tools == ["write"] and list(record.mcp_servers) == ["db"] and record.env_names == ["API_KEY"]


def test_changes_between_two_records_are_one_phrase_each() -> None:
    old = RulesRecord(
        model="gpt-5", deny_tools=["shell(rm)"], mcp_servers={"db": "1", "old": "2"}, env_names=["A"], env_hash="x"
    )
    new = RulesRecord(
        model="gpt-4.1",
        deny_tools=["shell(git push)"],
        allow_tools=["write"],
        mcp_servers={"db": "9", "new": "3"},
        env_names=["A"],
        env_hash="y",
    )
    assert rules_changes(old, new) == [
        "model gpt-5 -> gpt-4.1",
        "allow +write",
        "deny +shell(git push)",
        "deny -shell(rm)",
        "MCP server new added",
        "MCP server old removed",
        "MCP server db changed",
        "env values changed (A)",
    ]
    assert rules_changes(None, None) == [] and rules_changes(old, old) == []
    assert rules_changes(None, RulesRecord(agent="reviewer")) == ["agent default -> reviewer"]
