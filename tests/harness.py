"""Running `planeteer` as a person would, against the real Copilot CLI and a local scripted model."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import git, processes_with_env

from planeteer_action.copilot.agent import CopilotAgent
from planeteer_action.copilot.offline_model import OFFLINE_MODEL, OfflineModelServer, provider_config
from planeteer_action.engine.agent import TurnMode, TurnRequest
from planeteer_action.engine.rules import SessionRules
from planeteer_action.plan.model import Plan
from planeteer_action.plan.store import load_plan

REPO = Path(__file__).resolve().parents[1]
PLANETEER = Path(sys.executable).with_name("planeteer")
CLI = Path(os.environ.get("COPILOT_CLI_PATH") or REPO / ".tools/node_modules/.bin/copilot")
API_KEY = "sk-test-7c1d9e0f-never-printed"
RUNTIME_TAG = "PLANETEER_RUNTIME_TAG"
# Set by conftest to a value of this suite's own: see `suite_processes`.
SUITE_ENV = "TEST_SUITE_MARK"


def copilot_cli() -> str:
    path = os.environ.get("COPILOT_CLI_PATH") or str(REPO / ".tools/node_modules/.bin/copilot")
    if not Path(path).exists():
        pytest.skip(f"the Copilot CLI is not installed at {path}: run `make setup`")
    return path


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "remote", "add", "origin", "https://github.com/octo-org/planeteer-demo.git")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    (root / "README.md").write_text("demo\n")
    git(root, "add", "README.md")
    git(root, "commit", "--quiet", "-m", "initial")
    return root


def plan_data(edges: dict[str, list[str]], plan_id: str = "plan-it") -> dict[str, Any]:
    return {
        "id": plan_id,
        "name": "Integration plan",
        "description": "",
        "createdAt": "2026-11-24T09:00:00.000Z",
        "updatedAt": "2026-11-24T09:00:00.000Z",
        "tasks": [
            {
                "id": task_id,
                "title": f"Task {task_id}",
                "description": f"Do {task_id}.",
                "acceptanceCriteria": [f"{task_id} is done"],
                "dependsOn": deps,
                "status": "pending",
            }
            for task_id, deps in edges.items()
        ],
    }


@dataclass
class Workspace:
    repo: Path
    home: Path
    plan: Path
    model: OfflineModelServer

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLANETEER_")}
        env.update(COPILOT_CLI_PATH=copilot_cli(), PLANETEER_PROVIDER_API_KEY=API_KEY, NO_COLOR="1")
        return env

    def args(self, command: str, *extra: str, plan: bool = True) -> list[str]:
        base = [str(PLANETEER), command]
        if command == "run":
            base += ["--provider-base-url", self.model.base_url, "--model", "scripted"]
            base += ["--workdir", str(self.repo), "--copilot-home", str(self.home)]
        return base + list(extra) + ([str(self.plan)] if plan else [])

    def run(
        self, command: str, *extra: str, plan: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.args(command, *extra, plan=plan),
            cwd=self.repo,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(self, command: str, *extra: str) -> subprocess.Popen[str]:
        """A run in its own process group, so a signal to the group is what a terminal's Ctrl-C sends."""
        return self.launch(self.args(command, *extra))

    def launch(self, argv: list[str]) -> subprocess.Popen[str]:
        """Any command (`start`'s, or planeteer without the run's options) in the workspace, in its own group."""
        return subprocess.Popen(
            argv,
            cwd=self.repo,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def load(self) -> Plan:
        return load_plan(self.plan)


def make_workspace(tmp_path: Path, model: OfflineModelServer, edges: dict[str, list[str]]) -> Workspace:
    repo = make_repo(tmp_path / "repo")
    plan = repo / ".planeteer" / "plan-it.json"
    plan.parent.mkdir()
    plan.write_text(json.dumps(plan_data(edges), indent=2))
    return Workspace(repo=repo, home=tmp_path / "copilot-home", plan=plan, model=model)


def interrupt(
    process: subprocess.Popen[str], signum: int = signal.SIGINT, timeout: float = 30
) -> tuple[int, float, str]:
    """Signal the run's whole process group, as a terminal does; returns (exit code, seconds, stderr).

    A run that does not exit in time is killed, so that it cannot outlive its test and fail the next ones
    (their process checks see every process of the suite), and the failure shows what it printed.
    """
    started = time.monotonic()
    os.killpg(process.pid, signum)
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        late = f"the run did not exit within {timeout:g} s of signal {signum}; it printed:\n{stderr}"
        raise AssertionError(late) from None
    return process.returncode, time.monotonic() - started, stderr


def suite_processes() -> list[int]:
    """This test suite's live processes (see conftest's SUITE_ENV)."""
    return processes_with_env({SUITE_ENV: os.environ[SUITE_ENV]})


def runtime_processes() -> list[int]:
    """This suite's processes started by a planeteer Copilot runtime (the CLI and every shell it spawned)."""
    return processes_with_env({SUITE_ENV: os.environ[SUITE_ENV], RUNTIME_TAG: None})


def user_messages(request: dict[str, Any]) -> list[str]:
    return [m.get("content") or "" for m in request["messages"] if m.get("role") == "user"]


@contextlib.asynccontextmanager
async def running_agent(home: Path, model: OfflineModelServer, **provider: str) -> AsyncIterator[CopilotAgent]:
    """The real Copilot CLI on `home`, its model the scripted one (`provider` adds to its BYOK settings)."""
    agent = CopilotAgent(
        CLI, copilot_home=home, model=OFFLINE_MODEL, provider={**provider_config(model.base_url), **provider}
    )
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


def turn_request(
    task_id: str,
    workdir: Path,
    *,
    mode: TurnMode = "create",
    quiet: float = 30,
    activity: list[str] | None = None,
    rules: SessionRules | None = None,
    denied: list[str] | None = None,
) -> TurnRequest:
    """One turn of the scripted model's task `task_id`; `activity` and `denied` collect what the turn reports."""
    return TurnRequest(
        session_id=f"s-{task_id}",
        session_name=f"Task {task_id}",
        prompt=f"Planeteer task id: {task_id}\nDo the task.",
        mode=mode,
        working_directory=workdir,
        quiet_timeout=quiet,
        on_activity=(activity if activity is not None else []).append,
        rules=rules or SessionRules(),
        on_denied=(denied if denied is not None else []).append,
    )
