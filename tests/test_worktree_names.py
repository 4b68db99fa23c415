"""Every name the worktree layer makes is a ref git accepts, and distinct plans and tasks stay distinct."""

from __future__ import annotations

import subprocess

import pytest

from planeteer_action.worktrees.names import abandoned_ref, integration_branch, safe_ref_component, task_branch


def valid_branch(name: str) -> bool:
    done = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True, check=False)
    return done.returncode == 0


@pytest.mark.parametrize(
    "plan_id",
    ["plan-1732492800000", "", "..", ".hidden", "-dash", "a..b", "x.lock", "a b/c:d?e*f[g\\h~i^j", "ünï", "end."],
)
def test_integration_branch_is_always_a_valid_branch(plan_id: str) -> None:
    name = integration_branch(plan_id)
    assert valid_branch(name), name
    assert name.startswith("planeteer/")


def test_a_plain_plan_id_is_kept_as_is() -> None:
    assert integration_branch("plan-1732492800000") == "planeteer/plan-1732492800000"
    assert safe_ref_component("") == "plan"


def test_task_branches_and_abandoned_refs_are_valid_and_distinct() -> None:
    names = {task_branch("p", task) for task in ("api", "API", "a b", "ui")}
    assert len(names) == 4
    assert all(valid_branch(name) for name in names)
    ref = abandoned_ref("p", "api", 2)
    assert ref.startswith("refs/planeteer/") and ref.endswith("/abandoned/api-a2")
    assert subprocess.run(["git", "check-ref-format", ref], check=False).returncode == 0
