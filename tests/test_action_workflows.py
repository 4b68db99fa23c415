"""The YAML around the entrypoint: action.yml's wiring, this repository's CI, and the example workflow."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[1]


def load(relative: str) -> dict[str, Any]:
    data = yaml.safe_load((REPO / relative).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert isinstance(on, dict)
    return on


def test_action_yml_passes_every_input_to_both_steps_as_the_runner_names_them() -> None:
    action = load("action.yml")
    inputs = set(action["inputs"])
    read = set(re.findall(r'_get\("([a-z-]+)"\)', (REPO / "planeteer_action/action/inputs.py").read_text()))
    assert read <= inputs, f"inputs.py reads inputs action.yml does not declare: {read - inputs}"
    steps = {step.get("id"): step for step in action["runs"]["steps"]}
    for step_id, command in (("run", "run"), ("finalize", "finalize")):
        step = steps[step_id]
        # A JavaScript step holds the runtime token; its launcher forwards a cancellation's SIGINT to Python.
        assert step["uses"].startswith("actions/github-script@")
        launcher = "require('${{ github.action_path }}/planeteer_action/action/launch.js')"
        assert step["with"]["script"].strip() == f"return {launcher}.launch('{command}', core)"
        assert step["env"] == {f"INPUT_{name.upper()}": f"${{{{ inputs.{name} }}}}" for name in sorted(inputs)}
    assert steps["finalize"]["if"] == "always()"
    for name, output in action["outputs"].items():
        assert output["value"] == f"${{{{ steps.finalize.outputs.{name} }}}}"


def test_ci_runs_the_makefiles_test_and_lint_on_each_supported_python_and_node_20() -> None:
    ci = load(".github/workflows/ci.yml")
    assert {"push", "pull_request"} <= set(triggers(ci))
    assert ci["permissions"] == {"contents": "read"}
    (job,) = ci["jobs"].values()
    assert job["timeout-minutes"] <= 60
    # The lowest Python that requires-python admits, and the newest ones; each runs to the end on its own.
    floor = re.search(r'requires-python = ">=(3\.\d+)"', (REPO / "pyproject.toml").read_text())
    assert floor is not None
    versions = job["strategy"]["matrix"]["python-version"]
    assert versions[0] == floor.group(1) and "3.13" in versions
    assert job["strategy"]["fail-fast"] is False
    uses = {step["uses"].split("@")[0]: step for step in job["steps"] if "uses" in step}
    assert uses["actions/setup-python"]["with"]["python-version"] == "${{ matrix.python-version }}"
    assert uses["actions/setup-python"]["with"]["cache"] == "pip"
    assert str(uses["actions/setup-node"]["with"]["node-version"]) == "20"
    assert "~/.npm" in uses["actions/cache"]["with"]["path"]
    runs = [step["run"].strip() for step in job["steps"] if "run" in step]
    assert runs == ["make test", "make lint"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.M) and re.search(r"^lint:", makefile, re.M)


def test_the_example_workflow_uses_the_action_with_least_privilege() -> None:
    example = load("examples/workflows/run-plan.yml")
    dispatch = triggers(example)["workflow_dispatch"]
    assert dispatch["inputs"]["plan"]["required"] is True
    # Artifacts and cache go through the job's runtime token; REST reads of earlier attempts need actions: read;
    # the default delivery (a pull request) pushes a branch and opens a pull request.
    assert example["permissions"] == {"contents": "write", "pull-requests": "write", "actions": "read"}
    assert "inputs.plan" in example["concurrency"]["group"] and example["concurrency"]["cancel-in-progress"] is False
    (job,) = example["jobs"].values()
    assert job["timeout-minutes"] > 0
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    action_step = next(step for step in steps if step.get("uses", "").startswith("OWNER/planeteer-action@"))
    declared = set(load("action.yml")["inputs"])
    assert set(action_step["with"]) <= declared
    assert action_step["with"]["copilot-token"] == "${{ secrets.COPILOT_TOKEN }}"
    assert action_step["with"]["state-key"] == "${{ secrets.PLANETEER_STATE_KEY }}"
    keep = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert keep["if"].startswith("always()")
    assert keep["with"]["path"] == f"${{{{ steps.{action_step['id']}.outputs.plan-path }}}}"
    # Its name must not look like a checkpoint's (planeteer-<state>-attempt<N>-seq<N>) and must differ per attempt.
    assert not keep["with"]["name"].startswith("planeteer-") and "github.run_attempt" in keep["with"]["name"]


def test_no_step_of_the_action_exports_the_runtime_credentials_to_the_job() -> None:
    """GITHUB_ENV reaches every later step of the job, the repository's own build scripts included."""
    text = (REPO / "action.yml").read_text(encoding="utf-8")
    assert "exportVariable" not in text and "ACTIONS_RUNTIME_TOKEN" not in text
    for step in load("action.yml")["runs"]["steps"]:
        assert "GITHUB_ENV" not in step.get("run", "") or "ACTIONS_" not in step.get("run", "")


CURRENT_MAJORS = {
    "actions/checkout": 7,
    "actions/setup-python": 7,
    "actions/setup-node": 7,
    "actions/cache": 6,
    "actions/github-script": 9,
    "actions/upload-artifact": 7,
    "actions/download-artifact": 8,
}
"""The node24 majors, late 2026 (release notes quoted in /tmp/issue8-research.md §5); node20 ones are removed."""


def uses_of(data: Any) -> list[str]:
    """Every `uses:` value in a workflow or action file, however deeply nested."""
    if isinstance(data, dict):
        own = [str(data["uses"])] if "uses" in data else []
        return own + [u for value in data.values() for u in uses_of(value)]
    if isinstance(data, list):
        return [u for item in data for u in uses_of(item)]
    return []


@pytest.mark.parametrize("relative", ["action.yml", "examples/workflows/run-plan.yml", ".github/workflows/ci.yml"])
def test_every_official_action_is_at_its_current_major(relative: str) -> None:
    official = [u for u in uses_of(load(relative)) if u.startswith("actions/")]
    assert official, f"{relative} uses no official action"
    for uses in official:
        name, _, ref = uses.partition("@")
        assert name in CURRENT_MAJORS, f"{relative}: {uses} is not in the checked list; check its current major"
        assert ref == f"v{CURRENT_MAJORS[name]}", f"{relative}: {uses} is not the current major v{CURRENT_MAJORS[name]}"


def test_the_github_script_shim_gives_a_script_what_github_script_v9_gives(tmp_path: Path) -> None:
    """The argument names of v9 (src/args.ts), a require that resolves relative IDs against the working
    directory, no `@actions/github` (ESM-only since v9), and the script's result as the `result` output."""
    (tmp_path / "sibling.js").write_text("module.exports = 'found from the working directory'\n")
    script = """
        const names = ['require', '__original_require__', 'github', 'octokit', 'getOctokit', 'context', 'core',
          'exec', 'glob', 'io']
        let loaded = 'yes'
        try { require('@actions/github') } catch (error) { loaded = error.code }
        return {count: arguments.length, defined: names.filter(name => eval(`typeof ${name}`) !== 'undefined'),
          relative: require('./sibling.js'), github: loaded}
    """
    names = [
        "require",
        "__original_require__",
        "github",
        "octokit",
        "getOctokit",
        "context",
        "core",
        "exec",
        "glob",
        "io",
    ]
    output = tmp_path / "output"
    output.touch()
    env = {"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output), "INPUT_SCRIPT": script, "INPUT_GITHUB-TOKEN": "t"}
    shim = ["node", str(REPO / "tests/github_script.js")]
    done = subprocess.run(shim, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    header, value, _ = output.read_text().splitlines()
    assert header.startswith("result<<")
    assert json.loads(value) == {
        "count": len(names),
        "defined": names,
        "relative": "found from the working directory",
        "github": "MODULE_NOT_FOUND",
    }
    # A required input missing fails the step as github-script does.
    missing = subprocess.run(shim, cwd=tmp_path, env={**env, "INPUT_SCRIPT": ""}, capture_output=True, text=True)
    assert missing.returncode == 1
    assert "::error::Unhandled error: Error: Input required and not supplied: script" in missing.stdout
