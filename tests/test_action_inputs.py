"""The action's inputs as the runner passes them (`INPUT_<NAME>`), checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from planeteer_action.action.inputs import SECRET_INPUTS, mask_secrets, read_inputs
from planeteer_action.errors import ConfigError


def given(**inputs: str) -> dict[str, str]:
    """The step's variables holding these inputs, named as the runner names them: `working_directory`
    becomes INPUT_WORKING-DIRECTORY."""
    return {f"INPUT_{name.replace('_', '-').upper()}": value for name, value in inputs.items()}


def test_only_the_plan_is_needed_and_the_rest_has_defaults(tmp_path: Path) -> None:
    variables = given(plan=".planeteer/app.json")
    inputs = read_inputs(variables, tmp_path)
    assert inputs.plan == tmp_path / ".planeteer/app.json"
    assert inputs.working_directory == tmp_path.resolve()
    assert (inputs.concurrency, inputs.task_timeout, inputs.on_interrupted) == (4, 600.0, "resume")
    assert (inputs.provider_type, inputs.offline, inputs.resume_from_run) == ("openai", False, None)
    assert (inputs.model, inputs.provider_base_url, inputs.state_name) == (None, None, None)
    assert (inputs.copilot_token, inputs.provider_api_key, inputs.github_token, inputs.state_key) == (None,) * 4


def test_every_input_is_read_and_converted(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    variables = given(
        plan="p.json",
        working_directory="app",
        model="gpt-5",
        concurrency="8",
        task_timeout="20m",
        on_interrupted="fresh",
        provider_base_url="http://127.0.0.1:9/v1",
        provider_type="azure",
        offline="TRUE",
        resume_from_run="123456",
        state_name="nightly.run-1",
        copilot_token="ghu_copilot",
        provider_api_key="sk-provider",
        github_token="ghs_workflow",
        state_key="key-material",
    )
    inputs = read_inputs(variables, tmp_path)
    assert inputs.working_directory == (tmp_path / "app").resolve()
    assert (inputs.model, inputs.concurrency, inputs.task_timeout) == ("gpt-5", 8, 1200.0)
    assert (inputs.on_interrupted, inputs.provider_type, inputs.offline) == ("fresh", "azure", True)
    assert (inputs.resume_from_run, inputs.state_name) == (123456, "nightly.run-1")
    assert inputs.provider_base_url == "http://127.0.0.1:9/v1"
    assert (inputs.copilot_token, inputs.provider_api_key) == ("ghu_copilot", "sk-provider")
    assert (inputs.github_token, inputs.state_key) == ("ghs_workflow", "key-material")


def test_secrets_never_show_in_the_inputs_repr(tmp_path: Path) -> None:
    secrets = {name.replace("-", "_"): f"secret-{name}-value" for name in SECRET_INPUTS}
    variables = given(plan="p.json", **secrets)
    shown = repr(read_inputs(variables, tmp_path))
    assert "p.json" in shown
    assert not [value for value in secrets.values() if value in shown]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "input `plan` is required: set it to the plan's path"),
        ({"concurrency": "0"}, "input `concurrency` must be a whole number of at least 1, got '0'"),
        ({"concurrency": "two"}, "input `concurrency` must be a whole number of at least 1, got 'two'"),
        ({"on_interrupted": "ask"}, "input `on-interrupted` must be one of resume, fresh, cleanup, got 'ask'"),
        ({"resume_from_run": "latest"}, "input `resume-from-run` must be a workflow run id (a number), got 'latest'"),
        ({"provider_type": "gemini"}, "input `provider-type` must be openai, azure or anthropic, got 'gemini'"),
        ({"offline": "yes"}, "input `offline` must be true or false, got 'yes'"),
        ({"deliver": "push"}, "input `deliver` must be one of pull-request, branch, none, got 'push'"),
        ({"isolation": "none"}, "input `isolation` must be one of worktree, shared, got 'none'"),
        ({"commit_plan": "yes"}, "input `commit-plan` must be true or false, got 'yes'"),
        ({"state_name": "a/b"}, "input `state-name` may use letters, digits, '.', '_' and '-' (at most 80)"),
        ({"state_name": "x" * 81}, "input `state-name` may use letters, digits, '.', '_' and '-' (at most 80)"),
        ({"task_timeout": "soon"}, "input `task-timeout` 'soon' is not a duration"),
        ({"working_directory": "missing"}, "input `working-directory` "),
    ],
)
def test_a_bad_input_is_one_error_naming_the_input_and_the_fix(
    tmp_path: Path, inputs: dict[str, str], message: str
) -> None:
    variables = given(**({"plan": "p.json"} if inputs else {}), **inputs)
    with pytest.raises(ConfigError) as caught:
        read_inputs(variables, tmp_path)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_working_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a folder")
    variables = given(plan="p.json", working_directory="notes.txt")
    with pytest.raises(ConfigError, match=r"is not a folder in the workspace"):
        read_inputs(variables, tmp_path)


def test_every_secret_input_is_masked_and_nothing_else(capsys: pytest.CaptureFixture[str]) -> None:
    variables = given(plan="p.json", model="gpt-5", copilot_token="ghu_1", state_key="k-2", github_token="")
    mask_secrets(variables)
    masks = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::add-mask::")]
    assert sorted(masks) == ["::add-mask::ghu_1", "::add-mask::k-2"]
