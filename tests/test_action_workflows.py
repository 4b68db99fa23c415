"""The YAML around the entrypoint: action.yml's wiring, this repository's CI, and the example workflow."""

from __future__ import annotations

import re
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
    # Artifacts and cache go through the job's runtime token; REST reads of earlier attempts need actions: read.
    assert example["permissions"] == {"contents": "read", "actions": "read"}
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
