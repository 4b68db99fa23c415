"""The Markdown view written beside the plan: the TUI's layout, plus each task's session, commit and attempts.

It is built from pieces (head, one tree line per task, the tree's end, one section per task) so that a
writer saving the plan again and again renders only the changed tasks' pieces.
"""

from __future__ import annotations

from planeteer_action.plan.model import Plan, Task

_ICONS = {"done": "●", "failed": "✗", "in_progress": "◐", "interrupted": "◌"}


def markdown_head(plan: Plan) -> str:
    """Title, description and dates, up to the opening of the tree."""
    lines = [f"# {plan.name}", ""]
    if plan.description:
        lines += [plan.description, ""]
    lines += [f"> Created: {plan.created_at or '-'}", f"> Updated: {plan.updated_at or '-'}", ""]
    lines += ["## Work Breakdown Tree", "", "```", ""]
    return "\n".join(lines)


TREE_END = "```\n\n## Tasks\n\n"


def tree_line(entry: tuple[str, str, str], status: str) -> str:
    _, head, tail = entry
    return f"{head}{_ICONS.get(status, '○')}{tail}\n"


def short_commit(commit: str) -> str:
    """A commit as people read it in the views (`git show` takes it): its first 10 hex digits."""
    return commit[:10]


def task_section(task: Task) -> str:
    """One task's part of the view, ending in a blank line."""
    lines = [f"### {task.id}: {task.title}", ""]
    if task.description:
        lines += [task.description, ""]
    if task.acceptance_criteria:
        lines.append("**Acceptance Criteria:**")
        mark = "x" if task.status == "done" else " "
        lines += [f"- [{mark}] {criterion}" for criterion in task.acceptance_criteria]
        lines.append("")
    if task.depends_on:
        lines += [f"**Depends on:** {', '.join(task.depends_on)}", ""]
    lines += [f"**Status:** {task.status}", ""]
    if task.session_id:
        lines += [f"**Session:** `{task.session_id}`", ""]
    if task.commit:
        lines += [f"**Commit:** `{short_commit(task.commit)}`", ""]
    if task.attempts:
        lines.append("**Attempts:**")
        for attempt in task.attempts:
            error = f" — {attempt.error}" if attempt.error else ""
            kept = f" — its edits kept on `{attempt.abandoned_ref}`" if attempt.abandoned_ref else ""
            lines.append(f"- #{attempt.number} `{attempt.session_id}` {attempt.reason}: {attempt.outcome}{error}{kept}")
        lines.append("")
    return "\n".join(lines) + "\n"


# One tree line per task, in drawing order: (task id, the line before its status icon, the line after it).
TreeLayout = list[tuple[str, str, str]]


def tree_layout(plan: Plan) -> TreeLayout:
    """Each task under its first dependency, as the TUI draws it; further dependencies are named.

    Only the icons change while a plan runs, so a writer computes this once and fills in the statuses.
    """
    tasks = plan.tasks
    children: dict[str, list[Task]] = {task.id: [] for task in tasks}
    roots: list[Task] = []
    for task in tasks:
        parent = task.depends_on[0] if task.depends_on else None
        if parent in children:
            children[parent].append(task)
        else:
            roots.append(task)
    layout: TreeLayout = []
    # Iterative so that a 10,000-task chain does not hit the recursion limit.
    stack: list[tuple[Task, str, bool, bool]] = [(root, "", True, True) for root in reversed(roots)]
    while stack:
        task, prefix, is_last, is_root = stack.pop()
        connector = "" if is_root else ("└── " if is_last else "├── ")
        also = f" (also ← {', '.join(task.depends_on[1:])})" if len(task.depends_on) > 1 else ""
        layout.append((task.id, f"{prefix}{connector}", f" **{task.id}** — {task.title}{also}"))
        child_prefix = "" if is_root else prefix + ("    " if is_last else "│   ")
        kids = children[task.id]
        for i in reversed(range(len(kids))):
            stack.append((kids[i], child_prefix, i == len(kids) - 1, False))
    return layout
