"""The dependency graph on its own: structural checks, what may run now, what is blocked, and chain lengths."""

from __future__ import annotations

import random

import pytest

from planeteer_action.errors import PlanInvalid
from planeteer_action.plan.graph import (
    blocked_tasks,
    chain_lengths,
    check_graph,
    critical_path_length,
    find_cycle,
    ready_tasks,
    topological_order,
)
from planeteer_action.plan.model import Plan


def plan(edges: dict[str, list[str]], statuses: dict[str, str] | None = None) -> Plan:
    """Tasks in the order given, each depending on its list; statuses default to pending."""
    tasks = [
        {"id": task_id, "title": task_id, "dependsOn": deps, "status": (statuses or {}).get(task_id, "pending")}
        for task_id, deps in edges.items()
    ]
    return Plan.model_validate({"id": "plan-g", "name": "g", "tasks": tasks})


DIAMOND = {"setup": [], "api": ["setup"], "ui": ["setup"], "e2e": ["api", "ui"]}


def test_a_sound_graph_passes() -> None:
    check_graph(plan(DIAMOND))


def test_a_duplicate_id_is_named_with_how_many_share_it() -> None:
    duplicated = plan({"a": [], "b": []})
    duplicated.tasks += [duplicated.task("a").model_copy(), duplicated.task("a").model_copy()]
    with pytest.raises(PlanInvalid) as caught:
        check_graph(duplicated)
    assert str(caught.value) == "duplicate task id 'a' (3 tasks share it): give every task a unique id"


def test_an_unknown_dependency_names_the_task_and_the_missing_id() -> None:
    with pytest.raises(PlanInvalid, match="task 'api' depends on unknown task 'setpu': fix the id or remove"):
        check_graph(plan({"setup": [], "api": ["setpu"]}))


@pytest.mark.parametrize(
    ("edges", "shown"),
    [
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, "a -> b -> c -> a"),
        ({"a": ["a"]}, "a -> a"),
        ({"ok": [], "x": ["ok", "y"], "y": ["x"]}, "x -> y -> x"),
    ],
)
def test_a_cycle_is_shown_as_a_closed_path(edges: dict[str, list[str]], shown: str) -> None:
    with pytest.raises(PlanInvalid) as caught:
        check_graph(plan(edges))
    assert str(caught.value) == f"dependency cycle {shown}: remove one of these dependencies so the plan can run"


def test_find_cycle_handles_long_chains_without_recursion() -> None:
    n = 10_000
    chain = {f"t{i}": [f"t{i + 1}"] if i + 1 < n else [] for i in range(n)}
    assert find_cycle(plan(chain).tasks) is None
    chain[f"t{n - 1}"] = ["t0"]
    cycle = find_cycle(plan(chain).tasks)
    assert cycle is not None and len(cycle) == n + 1 and cycle[0] == cycle[-1] == "t0"


def test_ready_tasks_are_pending_or_interrupted_with_every_dependency_done_in_plan_order() -> None:
    edges = {"setup": [], "api": ["setup"], "ui": ["setup"], "docs": [], "e2e": ["api", "ui"], "busy": []}
    statuses = {"setup": "done", "ui": "interrupted", "busy": "in_progress"}
    assert [t.id for t in ready_tasks(plan(edges, statuses))] == ["api", "ui", "docs"]
    statuses.update(api="done", ui="done")
    assert [t.id for t in ready_tasks(plan(edges, statuses))] == ["docs", "e2e"]


def test_a_failure_blocks_its_pending_dependents_transitively_and_nothing_else() -> None:
    edges = {"a": [], "b": ["a"], "c": ["b"], "d": ["c", "other"], "other": [], "e": ["other"], "f": ["a"]}
    statuses = {"a": "failed", "f": "interrupted"}
    # f depends on the failed task too, but it is not pending: an interrupted task keeps its own status.
    assert blocked_tasks(plan(edges, statuses)) == {"b", "c", "d"}
    assert blocked_tasks(plan(edges)) == set()


def test_blocked_tasks_do_not_depend_on_plan_order() -> None:
    edges = {"late": ["middle"], "middle": ["first"], "first": []}
    assert blocked_tasks(plan(edges, {"first": "failed"})) == {"middle", "late"}


def test_chain_length_counts_the_task_and_its_longest_line_of_dependents() -> None:
    edges = {**DIAMOND, "docs": [], "deploy": ["e2e"]}
    assert chain_lengths(plan(edges)) == {"setup": 4, "api": 3, "ui": 3, "e2e": 2, "deploy": 1, "docs": 1}


def test_critical_path_is_the_longest_sum_of_durations_along_dependencies() -> None:
    durations = {"setup": 1.0, "api": 5.0, "ui": 2.0, "e2e": 1.5}
    assert critical_path_length(plan(DIAMOND), durations) == pytest.approx(7.5)
    assert critical_path_length(plan({}), {}) == 0.0


def test_topological_order_puts_every_dependency_first_in_random_graphs() -> None:
    rng = random.Random(7)
    for _ in range(20):
        ids = [f"t{i}" for i in range(60)]
        edges = {task_id: rng.sample(ids[:i], k=min(i, rng.randint(0, 3))) for i, task_id in enumerate(ids)}
        shuffled = dict(rng.sample(list(edges.items()), k=len(edges)))
        order = topological_order(plan(shuffled))
        assert sorted(order) == sorted(ids)
        position = {task_id: n for n, task_id in enumerate(order)}
        assert all(position[dep] < position[task_id] for task_id, deps in edges.items() for dep in deps)
