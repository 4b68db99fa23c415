"""The plan's structure: checks before anything runs (task ids, recorded sessions, dependencies), and
which tasks may run now."""

from __future__ import annotations

import unicodedata
from collections import Counter

from planeteer_action.errors import PlanInvalid
from planeteer_action.plan.model import Plan, Task
from planeteer_action.plan.session_ids import is_task_session, session_id_for, task_slug

# Tasks in these states are resumed in the session their `sessionId` names.
_RESUMED_STATES = ("in_progress", "interrupted")


def check_graph(plan: Plan) -> None:
    """Raise PlanInvalid for the first structural problem: unusable or duplicate ids, sessions that are not
    the task's own, unknown dependencies, cycles."""
    check_task_ids(plan)
    counts = Counter(task.id for task in plan.tasks)
    duplicates = sorted(task_id for task_id, n in counts.items() if n > 1)
    if duplicates:
        raise PlanInvalid(
            f"duplicate task id {duplicates[0]!r} ({counts[duplicates[0]]} tasks share it): give every task a unique id"
        )
    check_session_ids(plan)
    ids = set(counts)
    for task in plan.tasks:
        for dep in task.depends_on:
            if dep not in ids:
                raise PlanInvalid(
                    f"task {task.id!r} depends on unknown task {dep!r}: fix the id or remove the dependency"
                )
    cycle = find_cycle(plan.tasks)
    if cycle:
        raise PlanInvalid(
            f"dependency cycle {' -> '.join(cycle)}: remove one of these dependencies so the plan can run"
        )


def check_task_ids(plan: Plan) -> None:
    """Every id must read back as itself from the one-line task marker in the prompts, and give the task
    session ids of its own: planeteer's id scheme cannot represent an empty id, and proves ownership by it."""
    for index, task in enumerate(plan.tasks):
        problem = _task_id_problem(task.id)
        if problem:
            raise PlanInvalid(f"tasks[{index}] ({task.title!r}): {problem}")
    by_slug: dict[str, str] = {}
    for task in plan.tasks:
        other = by_slug.setdefault(task_slug(task.id), task.id)
        if other != task.id:
            raise PlanInvalid(
                f"task ids {other!r} and {task.id!r} would share session ids ({_session_pattern(plan, task)}):"
                " rename one of them"
            )


def check_session_ids(plan: Plan) -> None:
    """A task to be resumed must name a session planeteer made for it: resuming any other would continue
    someone else's conversation (or fail with a misleading error)."""
    for task in plan.tasks:
        if (
            task.status in _RESUMED_STATES
            and task.session_id
            and not is_task_session(task.session_id, plan.id, task.id)
        ):
            raise PlanInvalid(
                f"task {task.id!r} is {task.status} in session {task.session_id!r}, which is not a session planeteer"
                f" made for it ({_session_pattern(plan, task)}): restore the sessionId planeteer wrote, or remove it"
                " to start the task afresh"
            )


def _task_id_problem(task_id: str) -> str | None:
    if not task_id:
        return "the task id is empty: give every task a unique, non-empty id"
    if task_id != task_id.strip():
        return f"the task id {task_id!r} has leading or trailing whitespace: remove it"
    if any(unicodedata.category(ch) == "Cc" for ch in task_id):
        return f"the task id {task_id!r} contains a control character: use one line of text"
    return None


def _session_pattern(plan: Plan, task: Task) -> str:
    return session_id_for(plan.id, task.id, 1).removesuffix("1") + "<attempt>"


def find_cycle(tasks: list[Task]) -> list[str] | None:
    """One cycle as a closed path (a -> b -> a), or None. Iterative, so 10,000-task chains are fine."""
    deps = {task.id: task.depends_on for task in tasks}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in deps:
        if state.get(root):
            continue
        path: list[str] = [root]
        iters = [iter(deps[root])]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(deps.get(nxt, ())))
    return None


def blocked_tasks(plan: Plan) -> set[str]:
    """Pending tasks that can never run in this execution because a dependency failed (transitively)."""
    by_id = {task.id: task for task in plan.tasks}
    blocked: set[str] = set()
    changed = True
    while changed:
        changed = False
        for task in plan.tasks:
            if task.id in blocked or task.status != "pending":
                continue
            if any(by_id[d].status == "failed" or d in blocked for d in task.depends_on):
                blocked.add(task.id)
                changed = True
    return blocked


def ready_tasks(plan: Plan) -> list[Task]:
    """Tasks waiting to run (pending, or interrupted and to be resumed) whose dependencies are all done."""
    done = {task.id for task in plan.tasks if task.status == "done"}
    return [
        task
        for task in plan.tasks
        if task.status in ("pending", "interrupted") and all(d in done for d in task.depends_on)
    ]


def chain_lengths(plan: Plan) -> dict[str, int]:
    """For each task, how many tasks the longest chain starting at it holds (itself and its dependents).

    Starting the ready task with the longest chain first keeps the critical path moving; in plan order,
    a long chain can wait behind short ones and the whole run takes longer.
    """
    dependents: dict[str, list[str]] = {task.id: [] for task in plan.tasks}
    for task in plan.tasks:
        for dep in task.depends_on:
            dependents[dep].append(task.id)
    length: dict[str, int] = {}
    for task_id in reversed(topological_order(plan)):
        length[task_id] = 1 + max((length[d] for d in dependents[task_id]), default=0)
    return length


def critical_path_length(plan: Plan, duration: dict[str, float]) -> float:
    """The longest chain of task durations: no schedule can finish sooner (the benchmark's lower bound)."""
    by_id = {task.id: task for task in plan.tasks}
    finish: dict[str, float] = {}
    for task_id in topological_order(plan):
        start = max((finish[d] for d in by_id[task_id].depends_on), default=0.0)
        finish[task_id] = start + duration[task_id]
    return max(finish.values(), default=0.0)


def topological_order(plan: Plan) -> list[str]:
    indegree = {task.id: len(task.depends_on) for task in plan.tasks}
    dependents: dict[str, list[str]] = {task.id: [] for task in plan.tasks}
    for task in plan.tasks:
        for dep in task.depends_on:
            dependents[dep].append(task.id)
    order = [task_id for task_id, n in indegree.items() if n == 0]
    for task_id in order:
        for nxt in dependents[task_id]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                order.append(nxt)
    return order
