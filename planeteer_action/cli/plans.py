"""`planeteer validate`, `status` and `retry`: reading a plan, and putting its tasks back, without running it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from planeteer_action.cli.common import JSON_OPTION, PLAN_ARGUMENT, WORKDIR_OPTION, console, fail
from planeteer_action.cli.display import STATUS_STYLE
from planeteer_action.cli.rules_options import rule_options
from planeteer_action.engine.wording import format_duration
from planeteer_action.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_TASKS_FAILED, PlaneteerError
from planeteer_action.plan.markdown import short_commit
from planeteer_action.plan.model import Plan
from planeteer_action.plan.operations import retry_tasks, status_summary
from planeteer_action.plan.store import load_plan
from planeteer_action.rules.resolve import RuleOptions, rule_problems


@click.command()
@PLAN_ARGUMENT
@WORKDIR_OPTION
@rule_options
@JSON_OPTION
def validate(plan: Path, workdir: Path, as_json: bool, rules: RuleOptions) -> None:
    """Check PLAN without running it: JSON syntax, fields and types, duplicate ids, unknown
    dependencies and cycles; then the agents' settings: each task's model, reasoningEffort, env, allowTools,
    denyTools and agent, `.planeteer/settings.json`, the enabled skills' folders, the rule options given.
    Changes nothing. Exit 0 when the plan can run, 2 when it cannot (one line per problem).

    \b
    Example:
      planeteer validate .planeteer/app.json
      planeteer validate .planeteer/app.json --skills-dir ~/skills --mcp-config mcp.json
    """
    try:
        loaded = load_plan(plan)
    except PlaneteerError as exc:
        if not as_json:
            raise
        click.echo(json.dumps({"valid": False, "error": str(exc)}))
        sys.exit(exc.exit_code)
    problems = rule_problems(loaded, workdir.resolve(), rules)
    if as_json:
        verdict = {"valid": True, "planId": loaded.id, "tasks": len(loaded.tasks)}
        if problems:
            verdict = {"valid": False, "error": problems[0], "problems": problems}
        click.echo(json.dumps(verdict))
        sys.exit(EXIT_BAD_INPUT if problems else EXIT_OK)
    for problem in problems[:-1]:
        click.echo(f"planeteer: error: {problem}", err=True)
    if problems:
        fail(problems[-1])
    click.echo(f"{plan}: valid plan {loaded.name!r} with {len(loaded.tasks)} tasks")


@click.command()
@PLAN_ARGUMENT
@JSON_OPTION
def status(plan: Path, as_json: bool) -> None:
    """Show PLAN's progress: each task's status, session, attempts and time, and recovery decisions.

    Safe while a run is going on. Exit 0 when every task is done, 1 otherwise.

    \b
    Example:
      planeteer status .planeteer/app.json --json
    """
    loaded = load_plan(plan)
    summary = status_summary(loaded)
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print_status(loaded, summary)
    sys.exit(EXIT_OK if summary["complete"] else EXIT_TASKS_FAILED)


def _print_status(plan: Plan, summary: dict[str, Any]) -> None:
    out = console()
    done = summary["counts"].get("done", 0)
    tally = ", ".join(f"{n} {status}" for status, n in summary["counts"].items())
    out.print(f"[bold]{plan.name}[/] — {done}/{len(plan.tasks)} done ({tally})")
    table = Table(show_edge=False, pad_edge=False)
    # Worktree isolation records each task's merge commit; a shared-tree plan has none to show.
    commits = any(entry["commit"] for entry in summary["tasks"])
    denials = any(entry["deniedRequests"] for entry in summary["tasks"])
    optional = [*(["Commit"] if commits else []), "Attempts", "Time", *(["Denied"] if denials else [])]
    for column in ("Task", "Status", "Session", *optional, "Result"):
        minimum = 10 if column == "Result" else None
        table.add_column(column, overflow="ellipsis", no_wrap=True, min_width=minimum)
    for entry in summary["tasks"]:
        result = (entry["result"] or "").strip().splitlines()
        table.add_row(
            entry["id"],
            f"[{STATUS_STYLE.get(entry['status'], '')}]{entry['status']}[/]",
            entry["sessionId"] or "",
            *([short_commit(entry["commit"] or "")] if commits else []),
            str(len(entry["attempts"])),
            format_duration(entry["durationSeconds"]) if entry["attempts"] else "",
            *([str(entry["deniedRequests"] or "")] if denials else []),
            (result[0][:120] if result else ""),
        )
    out.print(table)
    for task in plan.tasks:
        if len(task.attempts) > 1 or any(a.session_deleted for a in task.attempts):
            out.print(f"[bold]{task.id}[/] attempts:")
            for a in task.attempts:
                gone = " (session deleted)" if a.session_deleted else ""
                out.print(
                    f"  #{a.number} {a.session_id}{gone} — {a.reason}: {a.outcome}"
                    + (f" — {a.error}" if a.error else "")
                    + (f" — its edits kept on {a.abandoned_ref}" if a.abandoned_ref else "")
                )
    for recovery in summary["recoveries"]:
        out.print(_recovery_line(recovery))


def _recovery_line(recovery: dict[str, Any]) -> str:
    line = f"recovery at {recovery['at']}: {recovery['choice']}"
    if recovery.get("resumed"):
        line += f", resumed {', '.join(recovery['resumed'])}"
    if recovery.get("restarted"):
        line += f", restarted {', '.join(recovery['restarted'])}"
    if recovery.get("deletedSessions"):
        line += f", deleted {len(recovery['deletedSessions'])} session(s)"
    for task_id, changes in (recovery.get("rulesChanged") or {}).items():
        line += f"; {task_id}'s rules changed since its session started: {'; '.join(changes)}"
    return line


@click.command()
@PLAN_ARGUMENT
@click.argument("tasks", nargs=-1, required=True)
def retry(plan: Path, tasks: tuple[str, ...]) -> None:
    """Put failed or interrupted TASKS of PLAN back to pending so the next run starts them afresh.

    The tasks they blocked run again too. Their attempt history is kept. With worktree isolation the next
    run resets each task's worktree before its fresh attempt (the old edits kept on a ref it records).

    \b
    Example:
      planeteer retry .planeteer/app.json api-client
      planeteer run .planeteer/app.json
    """
    unblocked = retry_tasks(plan, tasks)
    click.echo(f"reset to pending: {', '.join(tasks)}")
    if unblocked:
        click.echo(f"no longer blocked: {', '.join(sorted(unblocked))}")
