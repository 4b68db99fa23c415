"""The action's delivery: the `deliver` input turned into a Deliverer for the run step (check, then push after
every merge) and the finalize step (the last push, the pull request, the outputs)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from actions_toolkit import core

from planeteer_action.action.context import ActionContext
from planeteer_action.action.inputs import ActionInputs
from planeteer_action.delivery.deliverer import Delivered, Deliverer, DeliveryTarget
from planeteer_action.gitinfo import git
from planeteer_action.plan.store import markdown_path


def run_branch(variables: Mapping[str, str], checkout: Path) -> str | None:
    """The branch the run is for: a pull request's head branch, the pushed branch, else the checked-out one."""
    if variables.get("GITHUB_HEAD_REF"):
        return variables["GITHUB_HEAD_REF"]
    if variables.get("GITHUB_REF_TYPE") == "branch" and variables.get("GITHUB_REF_NAME"):
        return variables["GITHUB_REF_NAME"]
    return git(checkout, "symbolic-ref", "--quiet", "--short", "HEAD")


def action_deliverer(context: ActionContext, inputs: ActionInputs, plan_id: str) -> Deliverer | None:
    """None for `deliver: none`. With `commit-plan: true` the plan file and its Markdown view are delivered too."""
    if inputs.deliver == "none":
        return None
    plan_files = (inputs.plan, markdown_path(inputs.plan)) if inputs.commit_plan else ()
    target = DeliveryTarget(
        repo=inputs.working_directory,
        plan_id=plan_id,
        mode=inputs.deliver,
        token=inputs.github_token,
        repository=context.repository,
        api_url=context.api_url,
        base_branch=run_branch(context.variables, inputs.working_directory),
        plan_files=tuple(path for path in plan_files if path.is_file()),
    )
    return Deliverer(target, core.warning)


def delivery_outputs(delivered: Delivered) -> dict[str, str]:
    return {"branch": delivered.branch, "commit": delivered.commit, "pull-request-url": delivered.pull_request_url}
