"""The Markdown view's pieces on their own: the head, the tree as the TUI draws it, and each task's section."""

from __future__ import annotations

from typing import Any

import pytest

from planeteer_action.plan.markdown import TREE_END, markdown_head, task_section, tree_layout, tree_line
from planeteer_action.plan.model import Attempt, Plan, Task


def plan(tasks: list[dict[str, Any]], **fields: Any) -> Plan:
    return Plan.model_validate({"id": "plan-m", "name": "Todo app", "tasks": tasks, **fields})


def task(task_id: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"id": task_id, "title": f"Title of {task_id}", "dependsOn": list(deps), **fields}


def drawn(layout_plan: Plan) -> list[str]:
    """The tree as it appears in the file, every task pending."""
    return [tree_line(entry, "pending").rstrip("\n") for entry in tree_layout(layout_plan)]


def test_each_task_is_drawn_under_its_first_dependency_and_names_the_others() -> None:
    tasks = [task("setup"), task("api", "setup"), task("ui", "setup"), task("e2e", "api", "ui"), task("docs")]
    assert drawn(plan(tasks)) == [
        "○ **setup** — Title of setup",
        "├── ○ **api** — Title of api",
        "│   └── ○ **e2e** — Title of e2e (also ← ui)",
        "└── ○ **ui** — Title of ui",
        "○ **docs** — Title of docs",
    ]


def test_the_layout_keeps_the_task_ids_in_drawing_order() -> None:
    tasks = [task("b", "a"), task("a"), task("c", "a")]
    assert [task_id for task_id, _, _ in tree_layout(plan(tasks))] == ["a", "b", "c"]


def test_a_long_chain_is_drawn_without_recursion() -> None:
    tasks = [task("t0")] + [task(f"t{i}", f"t{i - 1}") for i in range(1, 5_000)]
    layout = tree_layout(plan(tasks))
    assert len(layout) == 5_000
    assert layout[-1][1] == " " * 4 * 4_998 + "└── "


@pytest.mark.parametrize(
    ("status", "icon"),
    [("done", "●"), ("failed", "✗"), ("in_progress", "◐"), ("interrupted", "◌"), ("pending", "○")],
)
def test_the_icon_shows_the_status(status: str, icon: str) -> None:
    assert tree_line(("api", "├── ", " **api** — API"), status) == f"├── {icon} **api** — API\n"


def test_the_head_has_the_title_description_and_dates_and_opens_the_tree() -> None:
    head = markdown_head(plan([], description="Build it.", createdAt="2026-11-20T10:00:00.000Z"))
    assert head == (
        "# Todo app\n\nBuild it.\n\n> Created: 2026-11-20T10:00:00.000Z\n> Updated: -\n\n"
        "## Work Breakdown Tree\n\n```\n"
    )
    assert "\n\n\n" not in markdown_head(plan([]))  # no empty description paragraph
    assert TREE_END.startswith("```\n")


def test_a_pending_task_section_has_open_criteria_and_no_execution_details() -> None:
    section = task_section(
        Task.model_validate(task("api", "setup", "db", description="CRUD.", acceptanceCriteria=["GET works"]))
    )
    assert section == (
        "### api: Title of api\n\nCRUD.\n\n**Acceptance Criteria:**\n- [ ] GET works\n\n"
        "**Depends on:** setup, db\n\n**Status:** pending\n\n"
    )


def test_a_done_task_ticks_its_criteria_and_lists_session_and_attempts() -> None:
    done = Task.model_validate(task("api", acceptanceCriteria=["a", "b"], status="done", sessionId="s-2"))
    done.attempts = [
        Attempt(number=1, session_id="s-1", reason="first start", started_at="t", outcome="failed", error="boom"),
        Attempt(number=2, session_id="s-2", reason="retry", started_at="t", outcome="done"),
    ]
    section = task_section(done)
    assert "- [x] a\n- [x] b\n" in section
    assert "**Session:** `s-2`\n" in section
    assert "- #1 `s-1` first start: failed — boom\n- #2 `s-2` retry: done\n" in section
    assert section.endswith("\n\n")


def test_a_bare_task_section_leaves_out_what_it_does_not_have() -> None:
    assert task_section(Task.model_validate(task("x"))) == "### x: Title of x\n\n**Status:** pending\n\n"


def test_an_isolated_task_section_shows_its_commit_and_where_an_abandoned_attempt_is_kept() -> None:
    merged = Task.model_validate(
        task("api", status="done", sessionId="s-2", commit="0123456789abcdef" * 2 + "01234567")
    )
    merged.attempts = [
        Attempt(
            number=1,
            session_id="s-1",
            reason="first start",
            started_at="t",
            outcome="superseded",
            abandoned_ref="refs/planeteer/5c1f0e2a/abandoned/api-a1",
        ),
        Attempt(number=2, session_id="s-2", reason="fresh start (chosen)", started_at="t", outcome="done"),
    ]
    section = task_section(merged)
    assert "**Session:** `s-2`\n\n**Commit:** `0123456789`\n\n**Attempts:**\n" in section
    assert (
        "- #1 `s-1` first start: superseded — its edits kept on `refs/planeteer/5c1f0e2a/abandoned/api-a1`\n" in section
    )
    assert "Commit" not in task_section(Task.model_validate(task("x", status="done")))
