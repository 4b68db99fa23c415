"""Delivery by the action end to end: its steps as the runner runs them, the real Copilot CLI with the
offline model, the fake GitHub services (pull requests included), and a local bare repository set as the
checkout's push URL (`remote.origin.pushurl`; the fetch URL stays github.com).

Most of these tests put the branch state a run would leave (`planeteer/<plan id>` holding commits) into the
checkout before a run with `isolation: shared`, which leaves that branch as it is, so what is delivered is
known exactly; one test delivers the branch an isolated run (the default) made itself.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from action_env import CLI, Machine, read_json
from action_repository import checkout, make_origin
from fakes.github_services import FakeGitHubServices
from harness import Workspace, make_workspace
from helpers import git

from planeteer_action.copilot.offline_model import OfflineModelServer
from planeteer_action.worktrees.names import integration_branch

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not CLI.exists(), reason=f"no Copilot CLI at {CLI}")]

PLAN_PATH = ".planeteer/plan.json"


def two_task_plan(plan_id: str) -> dict[str, Any]:
    def task(task_id: str) -> dict[str, Any]:
        fields = {"title": f"Task {task_id}", "description": "Write a note.", "acceptanceCriteria": []}
        return {"id": task_id, **fields, "dependsOn": [], "status": "pending"}

    return {"id": plan_id, "name": "Deliver me", "tasks": [task("a"), task("b")]}


class Scenario:
    """One workflow run of a plan; each attempt gets a fresh machine and clone, pushing to `bare`."""

    def __init__(self, tmp_path: Path, fake: FakeGitHubServices, plan_id: str, run_id: int) -> None:
        self.tmp_path, self.fake, self.run_id = tmp_path, fake, run_id
        self.branch = integration_branch(plan_id)
        self.origin = tmp_path / "origin"
        self.sha = make_origin(self.origin, two_task_plan(plan_id), PLAN_PATH)
        self.bare = tmp_path / "pushed.git"
        git(tmp_path, "clone", "--quiet", "--bare", str(self.origin), str(self.bare))
        fake.pulls.remote = self.bare
        self.machines: list[Machine] = []

    def machine(self, attempt: int, **inputs: str) -> Machine:
        root = self.tmp_path / f"attempt{attempt}"
        workspace = checkout(self.origin, self.sha, root / "work" / "planeteer")
        git(workspace, "config", "remote.origin.pushurl", str(self.bare))
        defaults = {"plan": PLAN_PATH, "offline": "true", "task-timeout": "2m", "github-token": self.fake.rest_token}
        machine = Machine(self.fake, self.run_id, attempt, root, workspace, self.sha, {**defaults, **inputs})
        self.machines.append(machine)
        return machine

    def integration_work(self, machine: Machine, *names: str) -> str:
        """What the core leaves: commits on the integration branch (continuing the pushed one), checkout untouched."""
        workspace = machine.workspace
        if git(self.bare, "branch", "--list", self.branch):
            git(workspace, "fetch", "--quiet", str(self.bare), f"{self.branch}:{self.branch}")
        else:
            git(workspace, "branch", self.branch)
        worktree = machine.root / "integration"
        git(workspace, "worktree", "add", "--quiet", str(worktree), self.branch)
        for name in names:
            (worktree / name).write_text(f"{name} by a task\n")
            git(worktree, "add", name)
            git(worktree, "commit", "--quiet", "-m", f"Task {name}")
        git(workspace, "worktree", "remove", "--force", str(worktree))
        return git(workspace, "rev-parse", self.branch)

    def pushed(self) -> str | None:
        return git(self.bare, "for-each-ref", "--format=%(objectname)", f"refs/heads/{self.branch}") or None

    def cleanup(self) -> None:
        for machine in self.machines:
            machine.cleanup()


@pytest.fixture
def scenario(tmp_path: Path, fake: FakeGitHubServices, request: pytest.FixtureRequest) -> Any:
    made: list[Scenario] = []

    def make(plan_id: str, run_id: int) -> Scenario:
        made.append(Scenario(tmp_path, fake, plan_id, run_id))
        return made[-1]

    yield make
    for each in made:
        each.cleanup()


def test_a_pull_request_is_opened_and_the_re_run_updates_the_same_one(scenario: Any, fake: FakeGitHubServices) -> None:
    flow: Scenario = scenario("plan-deliver-pr", 95_001)
    first = flow.machine(1, isolation="shared")
    tip = flow.integration_work(first, "a.txt")
    run = first.run_action()
    assert (run.run.exit_code, run.finalize.exit_code) == (0, 0), run.stdout + run.run.stderr + run.finalize.stderr
    (pull,) = fake.pulls.pulls
    assert run.outputs["branch"] == flow.branch and run.outputs["commit"] == tip == flow.pushed()
    assert run.outputs["pull-request-url"] == pull["html_url"]
    assert (pull["head"]["ref"], pull["base"]["ref"], pull["title"]) == (flow.branch, "main", "Planeteer: Deliver me")
    assert "| Task | Status |" in pull["body"] and "| a | done |" in pull["body"]
    assert "Delivery:** pushed planeteer/plan-deliver-pr" in run.summary
    assert git(first.workspace, "symbolic-ref", "--short", "HEAD") == "main"
    logged = [line for line in (run.stdout + run.run.stderr + run.finalize.stderr).splitlines()]
    assert not [line for line in logged if fake.rest_token in line and not line.startswith("::add-mask::")]

    fake.rerun_all_jobs(flow.run_id)
    second = flow.machine(2, isolation="shared")
    newer = flow.integration_work(second, "b.txt")
    rerun = second.run_action()
    assert (rerun.run.exit_code, rerun.finalize.exit_code) == (0, 0), rerun.stdout + rerun.finalize.stderr
    (updated,) = fake.pulls.pulls
    assert updated["number"] == pull["number"] and rerun.outputs["pull-request-url"] == pull["html_url"]
    assert updated["head"]["sha"] == newer == flow.pushed() == rerun.outputs["commit"]
    posts = [r for r in fake.requests if r.path.endswith("/pulls") and r.method == "POST" and r.status == 201]
    assert len(posts) == 1 and [r.method for r in fake.requests if r.path.endswith("/pulls/17")] == ["PATCH"]


def test_a_token_that_cannot_open_pull_requests_stops_the_run_before_any_agent(
    scenario: Any, fake: FakeGitHubServices
) -> None:
    flow: Scenario = scenario("plan-deliver-denied", 95_002)
    fake.pulls.permission = "read"
    machine = flow.machine(1)
    flow.integration_work(machine, "a.txt")
    run = machine.run_action()
    assert run.run.exit_code == 2
    (error,) = run.run.errors()
    assert "pull-requests: write" in error and "deliver: branch" in error
    statuses = {t["id"]: t["status"] for t in read_json(machine.workspace / PLAN_PATH)["tasks"]}
    assert statuses == {"a": "pending", "b": "pending"} and not fake.pulls.pulls
    assert flow.pushed() is None and run.finalize.exit_code == 0 and run.outputs["branch"] == ""


def test_deliver_branch_pushes_with_the_plan_file_when_asked(scenario: Any, fake: FakeGitHubServices) -> None:
    flow: Scenario = scenario("plan-deliver-branch", 95_003)
    machine = flow.machine(1, deliver="branch", isolation="shared", **{"commit-plan": "true"})
    tip = flow.integration_work(machine, "a.txt")
    run = machine.run_action()
    assert (run.run.exit_code, run.finalize.exit_code) == (0, 0), run.stdout + run.finalize.stderr
    delivered = run.outputs["commit"]
    assert delivered == flow.pushed() and git(flow.bare, "rev-parse", f"{delivered}^") == tip
    committed = git(flow.bare, "show", f"{delivered}:{PLAN_PATH}")
    assert '"status": "done"' in committed and run.outputs["pull-request-url"] == "" and not fake.pulls.pulls
    assert git(machine.workspace, "rev-parse", "HEAD") == flow.sha  # the checkout did not move


def test_the_action_delivers_the_integration_branch_its_run_made(scenario: Any, fake: FakeGitHubServices) -> None:
    flow: Scenario = scenario("plan-deliver-own", 95_004)
    machine = flow.machine(1)
    run = machine.run_action()
    assert (run.run.exit_code, run.finalize.exit_code) == (0, 0), run.stdout + run.finalize.stderr
    assert run.outputs["commit"] == flow.pushed() == git(machine.workspace, "rev-parse", flow.branch)
    assert run.outputs["pull-request-url"] == fake.pulls.pulls[0]["html_url"]


def cli_run(ws: Workspace, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in ws.env().items() if k not in ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_API_URL")}
    return subprocess.run(
        ws.args("run", *flags), cwd=ws.repo, env={**clean, **env}, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_the_cli_ends_a_local_run_with_the_same_pull_request(tmp_path: Path, fake: FakeGitHubServices) -> None:
    with OfflineModelServer() as model:
        ws = make_workspace(tmp_path, model, {"a": [], "b": ["a"]})
        branch = integration_branch(ws.load().id)
        bare = tmp_path / "pushed.git"
        git(ws.repo, "remote", "set-url", "origin", "git@github.com:octo-org/planeteer.git")
        git(tmp_path, "clone", "--quiet", "--bare", str(ws.repo), str(bare))
        git(ws.repo, "config", "remote.origin.pushurl", str(bare))
        fake.pulls.remote = bare

        refused = cli_run(ws, {}, "--push")
        assert refused.returncode == 2 and "GITHUB_TOKEN" in refused.stderr, refused.stderr
        assert ws.load().tasks[0].status == "pending"  # refused before any agent started

        env = {"GH_TOKEN": fake.rest_token, "GITHUB_API_URL": fake.api_url}
        done = cli_run(ws, env, "--pull-request")
    assert done.returncode == 0, done.stderr
    tip = git(ws.repo, "rev-parse", branch)
    assert tip == ws.load().task("b").commit  # the run's own integration branch is what was delivered
    (pull,) = fake.pulls.pulls
    assert (pull["head"]["sha"], pull["base"]["ref"]) == (tip, git(ws.repo, "symbolic-ref", "--short", "HEAD"))
    assert f"pull request #{pull['number']}" in done.stderr and fake.rest_token not in done.stderr + done.stdout
    assert "done" in pull["body"] and git(bare, "rev-parse", branch) == tip
