"""What an agent is told: the first prompt of a task, and the continuation after an interruption."""

from __future__ import annotations

from typing import Any

from planeteer_action.engine.prompts import TASK_MARKER, continuation_prompt, task_prompt
from planeteer_action.plan.model import Plan


def plan(*tasks: dict[str, Any], description: str = "") -> Plan:
    return Plan.model_validate({"id": "plan-p", "name": "Todo app", "description": description, "tasks": list(tasks)})


def task(task_id: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"id": task_id, "title": f"Title of {task_id}", "dependsOn": list(deps), **fields}


def test_the_prompt_carries_the_task_its_criteria_and_the_plan_around_it() -> None:
    todo = plan(
        task("setup", status="done"),
        task("api", "setup", description="CRUD endpoints.", acceptanceCriteria=["GET works", "POST works"]),
        task("ui", "setup", status="failed"),
        description="A small todo app.",
    )
    lines = task_prompt(todo, todo.task("api")).splitlines()
    assert f"{TASK_MARKER} api" in lines  # the offline model and people find the task by this line
    assert lines.index("## Task: Title of api") + 2 == lines.index("CRUD endpoints.")
    criteria = lines.index("## Acceptance criteria")
    assert lines[criteria + 1 : criteria + 3] == ["- GET works", "- POST works"]
    assert "Plan: Todo app" in lines and "Description: A small todo app." in lines
    assert "- setup: Title of setup [done]" in lines and "- ui: Title of ui [failed]" in lines
    assert "- api: Title of api [pending]" not in lines  # the task itself is not among the others


def test_what_the_dependencies_produced_is_passed_on_and_long_results_are_cut() -> None:
    todo = plan(
        task("setup", status="done", agentResult="  Created the package.\n"),
        task("db", status="done", agentResult="x" * 2500),
        task("auth", status="done"),
        task("api", "setup", "db", "auth"),
    )
    prompt = task_prompt(todo, todo.task("api"))
    results = prompt[prompt.index("## Results of the tasks this one depends on") :]
    assert "### setup: Title of setup\nCreated the package.\n" in results
    assert "### db: Title of db\n" + "x" * 2000 + " [...]\n" in results
    assert "x" * 2001 not in results
    assert "### auth: Title of auth\n(no summary)" in results


def test_a_task_without_description_criteria_or_dependencies_still_gets_a_whole_prompt() -> None:
    todo = plan(task("only"))
    prompt = task_prompt(todo, todo.task("only"))
    assert "(no description)" in prompt
    assert "## Acceptance criteria" not in prompt
    assert "Other tasks of the plan" not in prompt and "## Results of the tasks" not in prompt
    assert "Description:" not in prompt
    assert prompt.endswith("Plan: Todo app\n")


def test_other_tasks_are_listed_up_to_fifty() -> None:
    todo = plan(task("main"), *(task(f"t{i}") for i in range(60)))
    lines = task_prompt(todo, todo.task("main")).splitlines()
    listed = [line for line in lines if line.startswith("- t")]
    assert listed[0] == "- t0: Title of t0 [pending]" and len(listed) == 50
    assert "- ... and 10 more" in lines


def test_the_continuation_says_the_turn_was_interrupted_and_restates_the_criteria() -> None:
    todo = plan(task("api", acceptanceCriteria=["GET works"], description="Long description."))
    prompt = continuation_prompt(todo.task("api"))
    assert prompt.startswith("Your previous turn on this task was interrupted")
    assert "check the current state of the workspace" in prompt and "do not redo" in prompt
    assert f"{TASK_MARKER} api" in prompt.splitlines()
    assert "- GET works" in prompt.splitlines()
    assert "Long description." not in prompt  # the session already holds it
