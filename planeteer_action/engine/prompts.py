"""What each task's agent is told: the task, its criteria, the plan around it, and what it builds on."""

from __future__ import annotations

from collections.abc import Iterable

from planeteer_action.plan.model import Plan, Task

TASK_MARKER = "Planeteer task id:"
_TASK_OPENING = "You are implementing one task of the plan"
_RESULT_LIMIT = 2000


def task_prompt(plan: Plan, task: Task) -> str:
    lines = [
        f"{_TASK_OPENING} {plan.name!r}, working in this repository.",
        "Implement it fully, then check every acceptance criterion; if one is not met, keep working.",
        "Finish with a brief summary of what you did and how each criterion is met.",
        "",
        f"{TASK_MARKER} {task.id}",
        f"## Task: {task.title}",
        "",
        task.description or "(no description)",
        "",
        *_criteria(task),
        "## Plan context",
        f"Plan: {plan.name}",
    ]
    if plan.description:
        lines.append(f"Description: {plan.description}")
    others = [t for t in plan.tasks if t.id != task.id]
    if others:
        lines += ["", "Other tasks of the plan (for context; do not do them):"]
        lines += [f"- {t.id}: {t.title} [{t.status}]" for t in others[:50]]
        if len(others) > 50:
            lines.append(f"- ... and {len(others) - 50} more")
    deps = [plan.task(dep) for dep in task.depends_on]
    if deps:
        lines += ["", "## Results of the tasks this one depends on"]
        for dep in deps:
            result = (dep.agent_result or "(no summary)").strip()
            if len(result) > _RESULT_LIMIT:
                result = result[:_RESULT_LIMIT] + " [...]"
            lines += [f"### {dep.id}: {dep.title}", result, ""]
    return "\n".join(lines).rstrip() + "\n"


def continuation_prompt(task: Task) -> str:
    """Sent into the task's own session after an interruption: the turn it was in did not finish."""
    return "\n".join(
        [
            "Your previous turn on this task was interrupted before it finished (the run was stopped or "
            "the machine was lost). Any tool call that was in flight may not have completed.",
            "First check the current state of the workspace (files, command results) and do not redo "
            "work that is already done. Then finish the task.",
            "",
            f"{TASK_MARKER} {task.id}",
            f"## Task: {task.title}",
            *_criteria(task),
            "Finish with a brief summary of what you did and how each criterion is met.",
        ]
    )


def conflict_prompt(task: Task, integration_branch: str, paths: list[str]) -> str:
    """Sent into the task's own session when its finished work does not merge with the integrated work."""
    return "\n".join(
        [
            f"Your work on this task is committed, but it conflicts with work other tasks have merged into "
            f"`{integration_branch}` since you started, in: {', '.join(paths)}.",
            f"Run `git merge {integration_branch}` in your working directory, resolve every conflict so that both "
            "your task and the merged work are kept, and commit the merge. Then check the acceptance criteria again.",
            "",
            f"{TASK_MARKER} {task.id}",
            f"## Task: {task.title}",
            *_criteria(task),
            "Finish with a brief summary of how you resolved the conflicts.",
        ]
    )


def holds_task_prompt(messages: Iterable[str], task: Task) -> bool:
    """Whether a conversation was given `task`'s full prompt, not only a continuation (which names the task
    but carries no description, plan context or dependency results)."""
    marker_line = f"\n{TASK_MARKER} {task.id}\n"
    return any(message.startswith(_TASK_OPENING) and marker_line in message for message in messages)


def _criteria(task: Task) -> list[str]:
    if not task.acceptance_criteria:
        return []
    return ["## Acceptance criteria", *[f"- {c}" for c in task.acceptance_criteria], ""]
