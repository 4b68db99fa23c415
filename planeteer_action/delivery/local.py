"""Delivery from a terminal (`planeteer run --push` / `--pull-request`), ending a local run as the action
ends a CI run: same branch, same push, same pull request. The token comes from GITHUB_TOKEN or GH_TOKEN;
the repository from the push remote's GitHub URL; GitHub from GITHUB_API_URL (github.com by default)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from planeteer_action.delivery.deliverer import Deliverer, DeliveryTarget
from planeteer_action.delivery.errors import DeliveryRefused
from planeteer_action.delivery.push import fetch_remote, run_git
from planeteer_action.engine.events import Listener
from planeteer_action.gitinfo import git, repository_from_remote
from planeteer_action.plan.model import Plan
from planeteer_action.plan.store import markdown_path


@dataclass
class LocalDelivery:
    """Checked when made (before the run); `listeners` push after every merge; `finish` delivers at the end."""

    deliverer: Deliverer | None

    @property
    def listeners(self) -> list[Listener]:
        return [self.deliverer] if self.deliverer else []

    def finish(self, plan: Plan, plan_path: Path) -> None:
        """Push (and open or update the pull request), saying what was done on stderr."""
        if self.deliverer is None:
            return
        view = markdown_path(plan_path)
        body = view.read_text(encoding="utf-8") if view.is_file() else f"Planeteer plan {plan.name}"
        delivered = self.deliverer.deliver(f"Planeteer: {plan.name}", body)
        print(delivered.note, file=sys.stderr)


def local_delivery(
    checkout: Path, plan: Plan, *, push: bool, pull_request: bool, env: Mapping[str, str] | None = None
) -> LocalDelivery:
    """The delivery asked for on the command line, its access checked now, before any agent starts."""
    if not (push or pull_request):
        return LocalDelivery(None)
    variables = os.environ if env is None else env
    deliverer = Deliverer(
        DeliveryTarget(
            repo=checkout,
            plan_id=plan.id,
            mode="pull-request" if pull_request else "branch",
            token=variables.get("GITHUB_TOKEN") or variables.get("GH_TOKEN"),
            repository=_github_repository(checkout),
            api_url=variables.get("GITHUB_API_URL") or "https://api.github.com",
            base_branch=git(checkout, "symbolic-ref", "--quiet", "--short", "HEAD"),
        ),
        lambda warning: print(f"warning: {warning}", file=sys.stderr),
    )
    deliverer.check()
    return LocalDelivery(deliverer)


def _github_repository(checkout: Path) -> str | None:
    """owner/name from the GitHub URL the delivery remote pushes to (or fetches from)."""
    remote = _remote_or_none(checkout)
    if remote is None:
        return None
    for args in (["remote", "get-url", "--push", remote], ["remote", "get-url", remote]):
        done = run_git(checkout, args)
        repository = repository_from_remote(done.stdout.strip()) if done.returncode == 0 else None
        if repository:
            return repository
    return None


def _remote_or_none(checkout: Path) -> str | None:
    try:
        return fetch_remote(checkout)
    except DeliveryRefused:
        return None
