"""Delivering a plan's integration branch: checked before the run, pushed after every merge, and at the end
pushed once more and (for `pull-request`) proposed as a pull request, or the one opened before updated.

Needs only the repository's path, the plan, a token and where GitHub is: it reads the integration branch
the run left (`planeteer/<plan id>`) and never touches the checkout, its branch or its index.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from planeteer_action.delivery.errors import DeliveryFailed, DeliveryRefused
from planeteer_action.delivery.pulls import PullRequest, PullRequests
from planeteer_action.delivery.push import (
    branch_tip,
    check_push_access,
    commit_files,
    fetch_remote,
    push_branch,
    run_git,
)
from planeteer_action.engine.events import Event, RunFinished, TaskDone
from planeteer_action.worktrees.names import integration_branch

DeliverMode = Literal["pull-request", "branch", "none"]
DELIVER_MODES: tuple[str, ...] = get_args(DeliverMode)
# GitHub refuses a pull request body over 65,536 characters (422 "body is too long").
MAX_BODY_CHARACTERS = 60_000


@dataclass(frozen=True)
class DeliveryTarget:
    """Where and how to deliver. `base_branch` is what the pull request merges into (the run's branch);
    `plan_files` are committed on the branch at the end (the plan and its Markdown view), when asked."""

    repo: Path
    plan_id: str
    mode: DeliverMode
    token: str | None = field(repr=False)
    repository: str | None = None
    api_url: str = "https://api.github.com"
    base_branch: str | None = None
    plan_files: tuple[Path, ...] = ()

    @property
    def branch(self) -> str:
        return integration_branch(self.plan_id)


@dataclass(frozen=True)
class Delivered:
    """What was delivered (empty strings when nothing was), and a line saying what happened."""

    branch: str = ""
    commit: str = ""
    pull_request_url: str = ""
    note: str = ""


class Deliverer:
    """Subscribe it to the run's events: each `TaskDone` (a merge) and `RunFinished` asks for a push, done on
    one background thread so the run never waits; asks that come while a push runs make one more push after
    it, so pushes never pile up. A failed background push is a warning; the final push in `deliver` decides."""

    def __init__(self, target: DeliveryTarget, warn: Callable[[str], None]) -> None:
        self.target = target
        self._warn = warn
        self._remote: str | None = None
        self._wanted = threading.Event()
        self._stopping = False
        self._pushed: str | None = None
        self._warned: set[str] = set()
        self._worker: threading.Thread | None = None

    @property
    def remote(self) -> str:
        if self._remote is None:
            self._remote = fetch_remote(self.target.repo)
        return self._remote

    def check(self) -> None:
        """Before any agent starts: can this token push the branch (and open its pull request)?"""
        target = self.target
        if not target.token:
            raise DeliveryRefused(
                f"delivery ({target.mode}) needs a GitHub token: pass `github-token` (or GITHUB_TOKEN/GH_TOKEN "
                "for the CLI), or set `deliver: none`"
            )
        if target.mode == "pull-request":
            if not target.repository:
                raise DeliveryRefused(
                    f"no GitHub repository for the git remote `{self.remote}`: a pull request needs one; "
                    "push the branch only (`deliver: branch` / --push)"
                )
            if not target.base_branch:
                raise DeliveryRefused(
                    "the run is not on a branch, so a pull request has nothing to merge into: check out a branch, "
                    "or push the branch only (`deliver: branch` / --push)"
                )
        check_push_access(target.repo, self.remote, target.branch, target.token)
        if target.mode == "pull-request":
            self._pulls().check_access()

    def __call__(self, event: Event) -> None:
        if isinstance(event, TaskDone | RunFinished):
            if self._worker is None:
                self._worker = threading.Thread(target=self._push_when_asked, name="planeteer-push", daemon=True)
                self._worker.start()
            self._wanted.set()

    def close(self, timeout: float | None = None) -> bool:
        """Let the push that is running (and one more asked for meanwhile) finish; False if still going."""
        self._stopping = True
        self._wanted.set()
        if self._worker is not None:
            self._worker.join(timeout)
            return not self._worker.is_alive()
        return True

    def _push_when_asked(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                self._push_tip()
            except (DeliveryFailed, DeliveryRefused) as exc:
                if str(exc) not in self._warned:
                    self._warned.add(str(exc))
                    self._warn(f"{exc} (retried after the next merge and at the end)")
            if self._stopping and not self._wanted.is_set():
                return

    def _push_tip(self) -> str | None:
        tip = branch_tip(self.target.repo, self.target.branch)
        if tip is not None and tip != self._pushed:
            push_branch(self.target.repo, self.remote, tip, self.target.branch, self.target.token)
            self._pushed = tip
        return tip

    def deliver(self, title: str, body: str) -> Delivered:
        """The end: the plan files committed if asked, the branch pushed, the pull request opened or updated."""
        self.close()
        target = self.target
        tip = branch_tip(target.repo, target.branch)
        if tip is None:
            return Delivered(note=f"no integration branch {target.branch} in {target.repo}: nothing to deliver")
        if target.plan_files:
            message = f"Update the plan\n\nPlaneteer-Plan: {target.plan_id}\n"
            commit_files(target.repo, target.branch, target.plan_files, message)
        tip = self._push_tip() or tip
        pushed = f"pushed {target.branch} ({tip[:12]}) to `{self.remote}`"
        if target.mode == "branch":
            return Delivered(target.branch, tip, note=pushed)
        if not self._ahead_of_checkout(tip):
            return Delivered(target.branch, tip, note=f"{pushed}; it holds no new commits, so no pull request")
        pull = self._open_or_update(title, _fit(body))
        return Delivered(target.branch, tip, pull.html_url, f"{pushed}; pull request #{pull.number}: {pull.html_url}")

    def _open_or_update(self, title: str, body: str) -> PullRequest:
        target = self.target
        pulls = self._pulls()
        owner = (target.repository or "").partition("/")[0]
        existing = pulls.find_open(owner, target.branch)
        if existing is not None:
            return pulls.update(existing.number, title, body)
        return pulls.create(title, target.branch, target.base_branch or "", body)

    def _ahead_of_checkout(self, tip: str) -> bool:
        done = run_git(self.target.repo, ["rev-list", "--count", f"HEAD..{tip}"])
        return done.returncode != 0 or done.stdout.strip() != "0"

    def _pulls(self) -> PullRequests:
        return PullRequests(self.target.token or "", self.target.repository or "", self.target.api_url)


def _fit(body: str) -> str:
    if len(body) <= MAX_BODY_CHARACTERS:
        return body
    return body[:MAX_BODY_CHARACTERS] + "\n\n_The rest of the summary is in the workflow run's job summary._\n"
