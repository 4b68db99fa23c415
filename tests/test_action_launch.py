"""The action's launch: the runtime token only in planeteer's own process, signals through the launcher, and
no secret input within an agent's reach.

The steps run as action.yml says, under node (see action_env), with the real Copilot CLI, a scripted local
model and the fake GitHub services.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from action_env import CLI, JOB_TOKEN, Machine, read_json
from action_repository import checkout, make_origin
from fakes.github_services import FakeGitHubServices
from test_agent_environment import DUMP_COMMAND, DUMP_FILE, dump_sections

from planeteer_action.checkpoints.pieces import Piece, open_piece
from planeteer_action.checkpoints.segments import read_segment
from planeteer_action.checkpoints.zip_io import DEFAULT_LIMITS
from planeteer_action.copilot.offline_model import OfflineModelServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CLI.exists(), reason=f"no Copilot CLI at {CLI}"),
]

PLAN_PATH = ".planeteer/plan.json"
STATE_KEY = "canary-state-key-in-action-4e8b1c"
PROVIDER_KEY = "canary-provider-key-in-action-7a2f90"
GITHUB_TOKEN = "canary-github-token-in-action-c3d5e6"


def one_task_plan(plan_id: str) -> dict[str, Any]:
    task = {"id": "t", "title": "T", "description": "Do it.", "acceptanceCriteria": [], "dependsOn": []}
    return {"id": plan_id, "name": "One task", "tasks": [{**task, "status": "pending"}]}


@pytest.fixture
def fake() -> Iterator[FakeGitHubServices]:
    with FakeGitHubServices() as services:
        yield services


def open_plain_piece(data: bytes) -> Piece:
    return open_piece(data, key=None, expected_plan_id=None)


def machine(tmp_path: Path, fake: FakeGitHubServices, plan_id: str, inputs: dict[str, str]) -> Machine:
    sha = make_origin(tmp_path / "origin", one_task_plan(plan_id), PLAN_PATH)
    workspace = checkout(tmp_path / "origin", sha, tmp_path / "work")
    return Machine(
        fake,
        91_000,
        1,
        tmp_path,
        workspace,
        sha,
        # Its agents write into the checkout itself, which is what these scenarios watch.
        {"plan": PLAN_PATH, "task-timeout": "2m", "deliver": "none", "isolation": "shared", **inputs},
    )


def test_the_runtime_token_reaches_planeteer_and_no_later_step(tmp_path: Path, fake: FakeGitHubServices) -> None:
    box = machine(tmp_path, fake, "plan-launch-env", {"offline": "true"})
    try:
        run = box.run_action()
        later = box.run_later_step("env")  # e.g. the repository's own build script, after the action
    finally:
        box.cleanup()
    assert (run.run.exit_code, run.finalize.exit_code) == (0, 0), run.stdout + run.run.stderr
    assert run.outputs["status"] == "complete"
    assert [a.name for a in fake.artifacts if a.finalized], "planeteer had no token to upload with"
    for step_dir in tmp_path.glob("step*"):
        exported = (step_dir / "github-env").read_text()
        assert not [t for t in box.runtime_tokens if t in exported], f"{step_dir.name} exported the runtime token"
    assert not [name for name in box.job_env if name.startswith("ACTIONS_")], box.job_env
    assert later.exit_code == 0 and f"GITHUB_RUN_ID={box.run_id}" in later.stdout  # the control
    assert not [t for t in box.runtime_tokens if t in later.stdout], "a later step holds the runtime token"
    assert not [line for line in later.stdout.splitlines() if line.startswith(("ACTIONS_", "INPUT_"))]


def test_with_id_token_write_every_run_step_holds_the_runtime_token_under_another_name(
    tmp_path: Path, fake: FakeGitHubServices
) -> None:
    """The runner's doing, not the action's (ScriptHandler.cs sets the OIDC pair from the same AccessToken):
    the README says so, and this keeps the simulation honest about it."""
    box = machine(tmp_path, fake, "plan-launch-oidc", {"offline": "true"})
    box.id_token = True
    later = box.run_later_step("env")
    (line,) = [line for line in later.stdout.splitlines() if line.startswith("ACTIONS_ID_TOKEN_REQUEST_TOKEN=")]
    assert "ACTIONS_RUNTIME_TOKEN" not in later.stdout
    assert line.split("=", 1)[1] in box.runtime_tokens


def test_a_cancellation_reaches_python_through_the_launcher_and_finalize_uploads(
    tmp_path: Path, fake: FakeGitHubServices
) -> None:
    script = {"t": [{"bash": "echo started > started.txt && sleep 30"}, {"text": "not reached"}]}
    with OfflineModelServer(script=script) as model:
        box = machine(tmp_path, fake, "plan-launch-cancel", {"provider-base-url": model.base_url, "model": "m"})
        try:
            run = box.interrupted_action(lambda: (box.workspace / "started.txt").is_file(), signal.SIGINT)
            assert not box.leftovers(), "the steps left processes behind"
        finally:
            box.cleanup()
    assert run.run.exit_code == 130, run.stdout + run.run.stderr
    assert "run interrupted: 1 interrupted" in run.run.stdout
    assert read_json(box.workspace / PLAN_PATH)["tasks"][0]["status"] == "interrupted"
    assert run.finalize.exit_code == 0 and run.outputs["status"] == "interrupted"
    newest = run.outputs["checkpoint-artifact"]
    (stored,) = [a for a in fake.artifacts if a.name == newest and a.finalized]
    assert stored.data is not None
    pieces = read_segment(stored.data, DEFAULT_LIMITS)[1].values()
    plans = [piece.members["plan.json"] for piece in map(open_plain_piece, pieces) if "plan.json" in piece.members]
    assert [json.loads(plan)["tasks"][0]["status"] for plan in plans] == ["interrupted"]


def test_no_secret_input_reaches_an_agent_its_transcript_or_the_checkpoint(
    tmp_path: Path, fake: FakeGitHubServices
) -> None:
    with OfflineModelServer(script={"t": [{"bash": DUMP_COMMAND}, {"text": "dumped"}]}) as model:
        inputs = {
            "provider-base-url": model.base_url,
            "model": "m",
            "provider-api-key": PROVIDER_KEY,
            "state-key": STATE_KEY,
            "github-token": GITHUB_TOKEN,
        }
        box = machine(tmp_path, fake, "plan-launch-secrets", inputs)
        try:
            run = box.run_action()
        finally:
            box.cleanup()
    assert (run.run.exit_code, run.finalize.exit_code) == (0, 0), run.stdout + run.run.stderr
    sections = dump_sections((box.workspace / DUMP_FILE).read_text(errors="replace"))
    # The control: the dump holds the agent's environment and the launcher's (node's) own /proc environ.
    assert "GITHUB_WORKSPACE=" in sections["env"]
    assert any("github_script.js" in header for header in sections), list(sections)[:20]

    secrets = [STATE_KEY, PROVIDER_KEY, GITHUB_TOKEN, JOB_TOKEN, *box.runtime_tokens]
    places = {"the agent's dump": "\n".join(sections.values())}
    for path in box.state_root.rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_text(errors="replace")
    for artifact in fake.artifacts:
        places[f"artifact {artifact.name}"] = (artifact.data or b"").decode("latin-1")
    for secret in secrets:
        leaks = [where for where, text in places.items() if secret in text]
        assert not leaks, f"secret {secret[:12]}… found in {leaks}"
