"""The action's agent-rule inputs: `allowed-tools`, `denied-tools` (with the workflow defaults), `mcp-config`
(inline or a path; every value its `${VAR}`s take masked), `skills-dir`. Bad ones: one `::error::`, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planeteer_action.action.inputs import DEFAULT_DENIED_TOOLS, mask_mcp_values, read_inputs
from planeteer_action.action.main import main
from planeteer_action.action.report import summary_markdown
from planeteer_action.errors import ConfigError
from planeteer_action.plan.model import Plan

MCP = {"mcpServers": {"db": {"command": "db-server", "args": ["--token", "${DB_TOKEN}"]}}}


def given(**inputs: str) -> dict[str, str]:
    return {f"INPUT_{name.replace('_', '-').upper()}": value for name, value in {"plan": "p.json", **inputs}.items()}


def test_git_push_and_workflow_writes_are_denied_by_default(tmp_path: Path) -> None:
    rules = read_inputs(given(), tmp_path).rules
    assert rules.layer.deny_tools == DEFAULT_DENIED_TOOLS == ("shell(git push)", "write(.github/workflows/**)")
    assert rules.layer.allow_tools == () and rules.mcp_config is None and rules.mcp_config_json is None


def test_patterns_are_read_per_line_or_comma_and_allowing_a_default_lifts_it(tmp_path: Path) -> None:
    variables = given(
        allowed_tools="shell(git push), write\n  shell(npm run a, b)  \n\n",
        denied_tools="shell(rm)\nurl(https://example.com),shell(curl)",
    )
    rules = read_inputs(variables, tmp_path).rules
    assert rules.layer.allow_tools == ("shell(git push)", "write", "shell(npm run a, b)")
    assert rules.layer.deny_tools == (
        "write(.github/workflows/**)",
        "shell(rm)",
        "url(https://example.com)",
        "shell(curl)",
    )


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            {"denied_tools": "shell(rm"},
            "input `denied-tools`: tool pattern 'shell(rm' is not `kind` or `kind(argument)`",
        ),
        ({"allowed_tools": "shell()"}, "input `allowed-tools`: tool pattern 'shell()' is not"),
        ({"mcp_config": "missing.json"}, "input `mcp-config`: no file "),
        ({"mcp_config": "{oops"}, "input `mcp-config`:1:2: malformed JSON"),
        ({"mcp_config": '{"servers": {}}'}, 'input `mcp-config`: expected an object with "mcpServers"'),
        ({"skills_dir": "nowhere"}, "input `skills-dir` "),
        ({"add_dirs": "cache\nnowhere"}, "input `add-dirs`: "),
    ],
)
def test_a_bad_rule_input_is_one_error_naming_it(tmp_path: Path, inputs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_inputs(given(**inputs), tmp_path)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_added_folders_are_read_per_line_or_comma_relative_to_the_workspace(tmp_path: Path) -> None:
    for name in ("cache", "out"):
        (tmp_path / name).mkdir()
    rules = read_inputs(given(add_dirs=f"cache\n{tmp_path / 'out'}, cache"), tmp_path).rules
    assert rules.writable_dirs == ((tmp_path / "cache").resolve(), (tmp_path / "out").resolve())


def test_mcp_config_is_inline_json_or_a_path_in_the_workspace(tmp_path: Path) -> None:
    inline = read_inputs(given(mcp_config=json.dumps(MCP)), tmp_path).rules
    assert inline.mcp_config_json == json.dumps(MCP) and inline.mcp_config is None
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "mcp.json").write_text(json.dumps(MCP))
    (tmp_path / "skills").mkdir()
    from_file = read_inputs(given(mcp_config="ci/mcp.json", skills_dir="skills"), tmp_path).rules
    assert from_file.mcp_config == tmp_path / "ci" / "mcp.json" and from_file.mcp_config_json is None
    assert from_file.skills_dirs == ((tmp_path / "skills").resolve(),)


def test_every_value_an_mcp_variable_takes_is_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = read_inputs(given(mcp_config=json.dumps(MCP)), tmp_path).rules
    mask_mcp_values(rules, {"DB_TOKEN": "tok-123456789", "OTHER": "not-used-anywhere"})
    assert capsys.readouterr().out.splitlines() == ["::add-mask::tok-123456789"]


def _action_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **inputs: str) -> int:
    """The run step as the runner starts it in this workspace; its exit code."""
    for name, value in {
        **given(**inputs),
        "GITHUB_WORKSPACE": str(tmp_path),
        "RUNNER_TEMP": str(tmp_path / "temp"),
        "GITHUB_REPOSITORY": "octo/app",
        "GITHUB_RUN_ID": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PLANETEER_STEP_VARIABLES_FD", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["run"])
    return int(str(exited.value.code))


def test_an_unset_mcp_variable_stops_the_action_with_one_error_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DB_TOKEN", raising=False)
    assert _action_step(tmp_path, monkeypatch, mcp_config=json.dumps(MCP)) == 2
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::error")]
    assert errors == [
        "::error::input `mcp-config`: server 'db' uses ${DB_TOKEN}, which is not set: set it in the environment "
        "that starts planeteer (its value is never saved)"
    ]


def test_a_bad_task_setting_stops_the_action_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = {"id": "p", "name": "n", "tasks": [{"id": "a", "title": "t", "denyTools": ["shell("]}]}
    (tmp_path / "p.json").write_text(json.dumps(plan))
    before = (tmp_path / "p.json").read_bytes()
    assert _action_step(tmp_path, monkeypatch) == 2
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::error")]
    assert errors == [
        "::error::task 'a' denyTools: tool pattern 'shell(' is not `kind` or `kind(argument)`: write e.g. "
        "`shell(git push)` or `write`"
    ]
    assert (tmp_path / "p.json").read_bytes() == before


def test_the_job_summary_counts_denials_per_task_and_names_changed_rules() -> None:
    plan = Plan.model_validate(
        {
            "id": "p",
            "name": "n",
            "tasks": [{"id": "api", "title": "t", "status": "done", "deniedRequests": 3}, {"id": "ui", "title": "t"}],
            "execution": {
                "recoveries": [
                    {
                        "at": "x",
                        "choice": "resume",
                        "resumed": ["api"],
                        "rulesChanged": {"api": ["deny +shell(rm)", "MCP server db changed"]},
                    }
                ]
            },
        }
    )
    summary = summary_markdown(plan, {"recovered": True}, [], lambda run_id: f"https://runs/{run_id}")
    assert "**Denied:** 3 tool request(s) the rules refused (they never ran)" in summary
    assert "| Task | Status | Duration | Session | Attempts | Denied |" in summary
    assert "| api | done |  | `` |  | 3 |" in summary and "| ui | pending |  | `` |  |  |" in summary
    assert "api's rules changed since its session started: deny +shell(rm); MCP server db changed." in summary
    quiet = Plan.model_validate({"id": "p", "name": "n", "tasks": [{"id": "a", "title": "t"}]})
    assert "Denied" not in summary_markdown(quiet, {}, [], lambda run_id: "")
