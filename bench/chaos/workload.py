"""The plan the chaos rounds run, its workspaces, and the check of what a finished plan must show.

One epoch is one fresh workspace (git repository, plan file, Copilot home) running the plan from the start.
Rounds keep interrupting the current epoch; when a run completes the plan, that epoch is checked and the
next round starts a new one, so every round lands on a plan with work left.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos.model import ModelRequest, note_text
from bench.common import make_repo, plan_dict, task_dict
from planeteer_action.copilot.offline_model import note_path
from planeteer_action.copilot.runtime import plan_process_tag
from planeteer_action.plan.model import Plan, Task
from planeteer_action.plan.store import save_plan
from planeteer_action.worktrees.names import integration_branch

PLAN_ID = "chaos-plan"
EDGES: dict[str, list[str]] = {
    "c01": [],
    "c02": [],
    "c03": ["c01"],
    "c04": ["c01", "c02"],
    "c05": ["c02"],
    "c06": ["c03"],
    "c07": ["c04", "c05"],
    "c08": ["c06", "c07"],
    "c09": ["c05"],
    "c10": ["c08", "c09"],
}
SLEEPS: dict[str, float] = {"c02": 1.5, "c04": 1.0, "c06": 2.0, "c07": 1.0, "c09": 1.5}
"""Seconds of `sleep` some tasks run in a shell before writing their note, so signals land inside tools."""


def chaos_plan() -> Plan:
    tasks = [
        task_dict(task_id, deps, description=f"Record step {task_id} of the chaos plan in its note.")
        for task_id, deps in EDGES.items()
    ]
    return Plan.model_validate(plan_dict(PLAN_ID, tasks, name="Chaos plan"))


@dataclass
class Epoch:
    number: int
    repo: Path
    home: Path
    plan_path: Path
    done_at: dict[str, float] = field(default_factory=dict)
    """When each task was first known done: its `task_done` event, else the end of the round that saved it."""

    @property
    def tag(self) -> str:
        """What planeteer puts in the environment of every process its runs of this plan start."""
        return plan_process_tag(self.plan_path)


def new_epoch(root: Path, number: int) -> Epoch:
    folder = root / f"epoch-{number}"
    repo = make_repo(folder / "repo")
    plan_path = repo / ".planeteer" / "chaos.json"
    plan_path.parent.mkdir()
    save_plan(chaos_plan(), plan_path)
    return Epoch(number=number, repo=repo, home=folder / "copilot-home", plan_path=plan_path)


@dataclass(frozen=True)
class EpochVerdict:
    epoch: int
    done: int
    total: int
    repeated_tasks: list[str]
    """Tasks the model was asked about again after they were done (each finished task must run once)."""
    repeat_requests: int
    repeat_full_prompts: int
    """How many of those requests carried the task's full prompt (the task done over again, not only resumed)."""
    without_work: list[str]
    """Tasks marked done whose note is missing or wrong: done without their work."""


def check_epoch(epoch: Epoch, plan: Plan, log: Sequence[ModelRequest]) -> EpochVerdict:
    """What the epoch's plan, workspace and model requests show (its plan need not be complete)."""
    done = [task for task in plan.tasks if task.status == "done"]
    late = [
        request
        for request in log
        if request.epoch == epoch.number
        and request.task_id in epoch.done_at
        and request.at > epoch.done_at[request.task_id]
    ]
    return EpochVerdict(
        epoch=epoch.number,
        done=len(done),
        total=len(plan.tasks),
        repeated_tasks=sorted({str(request.task_id) for request in late}),
        repeat_requests=len(late),
        repeat_full_prompts=sum(request.full_prompt for request in late),
        without_work=[task.id for task in done if not _has_note(epoch.repo, plan, task)],
    )


def _has_note(repo: Path, plan: Plan, task: Task) -> bool:
    """The task's note, in the checkout (shared isolation) or on the plan's integration branch (worktrees)."""
    path = repo / note_path(task.id)
    if path.is_file():
        return path.read_text(encoding="utf-8") == note_text(task)
    shown = subprocess.run(
        ["git", "show", f"{integration_branch(plan.id)}:{note_path(task.id)}"],
        cwd=repo,
        capture_output=True,
        check=False,
    )
    return shown.returncode == 0 and shown.stdout.decode("utf-8", errors="replace") == note_text(task)
