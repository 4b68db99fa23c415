"""Delivery against real git remotes (a bare repository, and git's smart HTTP behind token auth) and the fake
GitHub pull request endpoints: the token only ever reaches the one push, pushes coalesce, pull requests are
opened once and updated after, and what cannot work is refused before the run with the fix."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.git_http import GitHttpServer
from fakes.github_services import FakeGitHubServices
from helpers import git

from planeteer_action.delivery.deliverer import Deliverer, DeliveryTarget
from planeteer_action.delivery.errors import DeliveryFailed, DeliveryRefused
from planeteer_action.delivery.push import git_environment
from planeteer_action.engine.events import RunFinished, TaskDone
from planeteer_action.worktrees.names import integration_branch

PLAN_ID = "plan-deliver"
BRANCH = "planeteer/plan-deliver"
TOKEN = "ghs_push-token-0123456789abcdefXYZ"


def commit(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "--quiet", "-m", f"write {name}")
    return git(repo, "rev-parse", "HEAD")


def integration_commits(repo: Path, count: int, start: int = 0) -> str:
    """Put `count` commits on the integration branch (made from HEAD if new) without leaving `main`."""
    worktree = repo.parent / f"integration-{start}"
    exists = subprocess.run(["git", "rev-parse", "--verify", "--quiet", BRANCH], cwd=repo, capture_output=True)
    new_branch = [] if exists.returncode == 0 else ["-b", BRANCH]
    git(repo, "worktree", "add", "--quiet", *new_branch, str(worktree), *([BRANCH] if not new_branch else []))
    for index in range(start, start + count):
        commit(worktree, f"task-{index}.txt", f"task {index}\n")
    git(repo, "worktree", "remove", "--force", str(worktree))
    return git(repo, "rev-parse", BRANCH)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "checkout"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    commit(repo, "README.md", "# project\n")
    return repo


@pytest.fixture
def served(tmp_path: Path, checkout: Path) -> Iterator[GitHttpServer]:
    """The checkout's `origin` fetches from github.com and pushes to a token-guarded smart-HTTP remote."""
    root = tmp_path / "served"
    root.mkdir()
    git(root, "init", "--quiet", "--bare", "planeteer.git")
    with GitHttpServer(root, TOKEN) as server:
        git(checkout, "remote", "add", "origin", "https://github.com/octo-org/planeteer.git")
        git(checkout, "config", "remote.origin.pushurl", server.url("planeteer.git"))
        yield server


def target(repo: Path, mode: str = "branch", **more: object) -> DeliveryTarget:
    return DeliveryTarget(repo=repo, plan_id=PLAN_ID, mode=mode, token=TOKEN, **more)  # type: ignore[arg-type]


def remote_tip(server: GitHttpServer) -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", BRANCH],
        cwd=server.root / "planeteer.git",
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or None


@pytest.mark.parametrize(
    ("plan_id", "branch"),
    [
        ("plan-1732492800000", "planeteer/plan-1732492800000"),
        ("My plan: v2/final", "planeteer/My-plan--v2-final"),
        ("..hidden..x.lock", "planeteer/hidden.x"),
        ("-", "planeteer/plan"),
        ("ünïcode", "planeteer/n-code"),
    ],
)
def test_the_integration_branch_is_a_valid_ref_for_any_plan_id(plan_id: str, branch: str, tmp_path: Path) -> None:
    assert integration_branch(plan_id) == branch
    done = subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"], capture_output=True)
    assert done.returncode == 0, branch


def test_the_token_reaches_the_push_and_nothing_else(
    checkout: Path, served: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "git-trace.log"
    monkeypatch.setenv("GIT_TRACE", str(trace))  # every command line git and its helpers run
    store = tmp_path / "stored-credentials"
    git(checkout, "config", "credential.helper", f"store --file={store}")  # a user's helper that keeps secrets
    tip = integration_commits(checkout, 2)
    warnings: list[str] = []
    deliverer = Deliverer(target(checkout), warnings.append)
    deliverer.check()
    delivered = deliverer.deliver("title", "body")
    assert (delivered.branch, delivered.commit, remote_tip(served)) == (BRANCH, tip, tip)
    assert any(served.authorized(header) for header in served.authorizations), "the push carried no token"
    assert TOKEN not in (checkout / ".git" / "config").read_text()
    assert not store.exists(), "the user's credential store kept the token"
    assert TOKEN not in trace.read_text() and "credential" in trace.read_text()  # the helper ran, by name only
    assert TOKEN not in delivered.note + "".join(warnings)
    assert git(checkout, "symbolic-ref", "--short", "HEAD") == "main" and not git(checkout, "status", "--porcelain")


def test_the_given_token_pushes_even_over_credentials_the_checkout_persisted(
    checkout: Path, served: GitHttpServer
) -> None:
    """actions/checkout leaves `http.<server>/.extraheader` with the job's token in .git/config; a push must
    still go with the token given for delivery (a personal token's push triggers workflows, the job's not)."""
    origin = served.url("")
    other = base64.b64encode(b"x-access-token:ghs_the-jobs-own-token-000000").decode()
    git(checkout, "config", f"http.{origin}.extraheader", f"AUTHORIZATION: basic {other}")
    tip = integration_commits(checkout, 1)
    deliverer = Deliverer(target(checkout), print)
    deliverer.check()
    assert deliverer.deliver("t", "b").commit == tip == remote_tip(served)
    assert all(served.authorized(header) for header in served.authorizations[-2:])


def test_the_token_is_in_the_push_environment_only_for_its_credential_helper(checkout: Path) -> None:
    env = git_environment(
        TOKEN, {"PATH": "/usr/bin:/bin", "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "a.b", "GIT_CONFIG_VALUE_0": "c"}
    )
    assert [name for name, value in env.items() if TOKEN in value] == ["PLANETEER_PUSH_TOKEN"]
    assert (env["GIT_CONFIG_KEY_0"], env["GIT_CONFIG_COUNT"]) == ("a.b", "4")  # the caller's own settings kept
    answer = subprocess.run(
        ["git", "credential", "fill"], input="protocol=https\nhost=github.com\n\n", env=env, cwd=checkout,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"password={TOKEN}" in answer.stdout and "username=x-access-token" in answer.stdout
    assert git_environment(None, {"PATH": "/usr/bin"}) == {"PATH": "/usr/bin", "GIT_TERMINAL_PROMPT": "0"}


def test_a_token_that_cannot_push_is_refused_before_the_run(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "read-only"
    root.mkdir()
    git(root, "init", "--quiet", "--bare", "planeteer.git")
    with GitHttpServer(root, TOKEN, read_only=True) as server:
        git(checkout, "remote", "add", "origin", server.url("planeteer.git"))
        with pytest.raises(DeliveryRefused) as refused:
            Deliverer(target(checkout), print).check()
        wrong = DeliveryTarget(repo=checkout, plan_id=PLAN_ID, mode="branch", token="ghs_wrong-token-0123456789")
        with pytest.raises(DeliveryRefused) as rejected:
            Deliverer(wrong, print).check()
    assert "contents: write" in str(refused.value) and "deliver: none" in str(refused.value)
    assert "contents: write" in str(rejected.value) and "ghs_wrong-token" not in str(rejected.value)
    assert not (root / "planeteer.git" / "refs" / "heads" / "planeteer").exists()


def test_delivery_without_a_token_or_a_remote_says_what_to_do(checkout: Path) -> None:
    no_token = DeliveryTarget(repo=checkout, plan_id=PLAN_ID, mode="branch", token=None)
    with pytest.raises(DeliveryRefused, match="needs a GitHub token"):
        Deliverer(no_token, print).check()
    with pytest.raises(DeliveryRefused, match="git remote add origin"):
        Deliverer(target(checkout), print).check()


def test_pushes_follow_the_merges_coalesced_and_the_last_one_wins(checkout: Path, served: GitHttpServer) -> None:
    integration_commits(checkout, 1)
    deliverer = Deliverer(target(checkout), print)
    deliverer.check()
    events = 0
    for round_number in range(8):  # merges land while pushes run, at many different moments
        tip = integration_commits(checkout, 1, start=100 + round_number)
        for _ in range(5):
            deliverer(TaskDone(task_id=f"t{round_number}", session_id="s", summary="done"))
            events += 1
    deliverer(RunFinished(status="complete", counts={"done": 8}))
    assert deliverer.close(timeout=60)
    assert remote_tip(served) == tip
    assert 1 <= served.pushes <= 9 < events, served.pushes  # at most one per merge, never one per event


def test_a_remote_branch_with_commits_the_run_lacks_is_not_overwritten(checkout: Path, served: GitHttpServer) -> None:
    integration_commits(checkout, 1)
    Deliverer(target(checkout), print).deliver("t", "b")
    other = checkout.parent / "someone-else"
    git(checkout.parent, "clone", "--quiet", str(served.root / "planeteer.git"), str(other))
    git(other, "checkout", "--quiet", BRANCH)
    theirs = commit(other, "review-fix.txt", "a reviewer's fix\n")
    git(other, "push", "--quiet", "origin", BRANCH)
    integration_commits(checkout, 1, start=5)
    with pytest.raises(DeliveryFailed, match="holds commits this run does not have"):
        Deliverer(target(checkout), print).deliver("t", "b")
    assert remote_tip(served) == theirs


def test_nothing_is_delivered_without_an_integration_branch(checkout: Path, served: GitHttpServer) -> None:
    delivered = Deliverer(target(checkout), print).deliver("t", "b")
    assert (delivered.branch, delivered.commit, served.pushes) == ("", "", 0)
    assert "no integration branch planeteer/plan-deliver" in delivered.note


def test_commit_plan_adds_the_plan_files_on_the_branch_and_leaves_the_checkout_alone(
    checkout: Path, served: GitHttpServer
) -> None:
    plan = checkout / ".planeteer" / "plan.json"
    plan.parent.mkdir()
    plan.write_text(json.dumps({"id": PLAN_ID, "tasks": []}))
    git(checkout, "add", ".")
    git(checkout, "commit", "--quiet", "-m", "the plan")
    head = git(checkout, "rev-parse", "HEAD")
    tip = integration_commits(checkout, 1)
    plan.write_text(json.dumps({"id": PLAN_ID, "tasks": [], "status": "updated by the run"}))
    view = plan.with_suffix(".md")
    view.write_text("# the plan's view\n")
    delivered = Deliverer(target(checkout, plan_files=(plan, view)), print).deliver("t", "b")
    assert git(checkout, "rev-parse", f"{delivered.commit}^") == tip and remote_tip(served) == delivered.commit
    assert "updated by the run" in git(checkout, "show", f"{delivered.commit}:.planeteer/plan.json")
    assert git(checkout, "show", f"{delivered.commit}:.planeteer/plan.md") == "# the plan's view"
    assert "Planeteer-Plan: plan-deliver" in git(checkout, "log", "-1", "--format=%B", delivered.commit)
    assert git(checkout, "rev-parse", "HEAD") == head  # the checkout's branch, index and files as they were:
    changed = {line.strip() for line in git(checkout, "status", "--porcelain").splitlines()}
    assert changed == {"M .planeteer/plan.json", "?? .planeteer/plan.md"}
    assert git(checkout, "diff", "--cached", "--name-only") == ""


def pull_target(repo: Path, fake: FakeGitHubServices, **more: object) -> DeliveryTarget:
    return DeliveryTarget(
        repo=repo, plan_id=PLAN_ID, mode="pull-request", token=fake.rest_token, repository=fake.repository,
        api_url=fake.api_url, base_branch="main", **more,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture
def bare_origin(tmp_path: Path, checkout: Path, fake: FakeGitHubServices) -> Path:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", str(bare))
    git(checkout, "remote", "add", "origin", "https://github.com/octo-org/planeteer.git")
    git(checkout, "config", "remote.origin.pushurl", str(bare))
    git(checkout, "push", "--quiet", str(bare), "main")
    fake.pulls.remote = bare
    return bare


def test_a_pull_request_is_opened_once_then_updated(
    checkout: Path, bare_origin: Path, fake: FakeGitHubServices
) -> None:
    integration_commits(checkout, 1)
    deliverer = Deliverer(pull_target(checkout, fake), print)
    deliverer.check()
    first = deliverer.deliver("Planeteer: demo", "| Task | Status |\n| a | done |")
    tip = integration_commits(checkout, 1, start=1)
    second = Deliverer(pull_target(checkout, fake), print).deliver("Planeteer: demo", "| Task | Status |\n| b | done |")
    (pull,) = fake.pulls.pulls
    assert first.pull_request_url == second.pull_request_url == pull["html_url"]
    assert (pull["head"]["ref"], pull["base"]["ref"], pull["head"]["sha"]) == (BRANCH, "main", tip)
    assert "| b | done |" in pull["body"] and pull["title"] == "Planeteer: demo"
    assert [r.method for r in fake.requests if "/pulls" in r.path] == ["POST", "GET", "POST", "GET", "PATCH"]


def test_a_branch_with_nothing_new_opens_no_pull_request(
    checkout: Path, bare_origin: Path, fake: FakeGitHubServices
) -> None:
    git(checkout, "branch", BRANCH)
    delivered = Deliverer(pull_target(checkout, fake), print).deliver("t", "b")
    assert delivered.branch == BRANCH and not delivered.pull_request_url and "no pull request" in delivered.note
    assert fake.pulls.pulls == []


@pytest.mark.parametrize(
    ("permission", "actions_may_open", "expected"),
    [
        ("read", True, "add `permissions: pull-requests: write` to the workflow, or set `deliver: branch`"),
        ("none", True, "add `permissions: pull-requests: write` to the workflow, or set `deliver: branch`"),
        ("write", False, "Allow GitHub Actions to create and approve pull requests"),
    ],
)
def test_a_token_that_cannot_open_pull_requests_is_refused_before_the_run(
    checkout: Path, bare_origin: Path, fake: FakeGitHubServices, permission: str, actions_may_open: bool, expected: str
) -> None:
    fake.pulls.permission, fake.pulls.actions_may_open = permission, actions_may_open
    with pytest.raises(DeliveryRefused) as refused:
        Deliverer(pull_target(checkout, fake), print).check()
    assert expected in str(refused.value) and fake.rest_token not in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_user_token_without_push_access_is_refused(
    checkout: Path, bare_origin: Path, fake: FakeGitHubServices
) -> None:
    fake.user_permissions = {"admin": False, "maintain": False, "push": False, "triage": False, "pull": True}
    with pytest.raises(DeliveryRefused, match="cannot push to octo-org/planeteer"):
        Deliverer(pull_target(checkout, fake), print).check()
