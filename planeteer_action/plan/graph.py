"""The dependency graph: structural checks before anything runs, and which tasks may run now."""

from __future__ import annotations

from collections import Counter

from planeteer_action.errors import PlanInvalid
from planeteer_action.plan.model import Plan, Task


def check_graph(plan: Plan) -> None:
    """Raise PlanInvalid for the first structural problem: duplicate ids, unknown dependencies, cycles."""
    counts = Counter(task.id for task in plan.tasks)
    duplicates = sorted(task_id for task_id, n in counts.items() if n > 1)
    if duplicates:
        raise PlanInvalid(
            f"duplicate task id {duplicates[0]!r} ({counts[duplicates[0]]} tasks share it): give every task a unique id"
        )
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
