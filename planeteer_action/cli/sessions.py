"""`planeteer sessions list` and `cleanup`: the Copilot sessions of a repository, whose they are, and orphans."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from planeteer_action.cli.common import (
    COPILOT_HOME_OPTION,
    JSON_OPTION,
    WORKDIR_OPTION,
    console,
    interactive,
    with_agent,
)
from planeteer_action.engine.cleanup import Confirm, cleanup_orphans
from planeteer_action.engine.sessions import KIND_LABELS, ClassifiedSession, SessionScope, classify, sessions_in_scope
from planeteer_action.engine.wording import format_duration, parse_duration
from planeteer_action.errors import PlaneteerError

_SCOPE_OPTIONS = [
    click.option(
        "--plan",
        "plan_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="The plan whose sessions to single out (plans in .planeteer/ are always consulted).",
    ),
    click.option("--repository", help="OWNER/REPO to look in (default: this checkout's GitHub remote)."),
    click.option(
        "--branch",
        help="Branch to look in (default: the current branch); the consulted plans' own sessions are found "
        "on any branch (an isolated task's session is on its task branch).",
    ),
    WORKDIR_OPTION,
    COPILOT_HOME_OPTION,
]


def _scope_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_SCOPE_OPTIONS):
        func = option(func)
    return func


@click.group()
def sessions() -> None:
    """List and clean up the Copilot sessions planeteer created in this repository.

    Sessions are found through Copilot's own session store, filtered by repository and branch (by default
    the current ones); the sessions of the plans in .planeteer/ (and --plan) are found on every branch of
    the repository, since an isolated task's session is recorded under its own task branch.
    Only sessions whose ids follow planeteer's scheme and that no task of a readable plan still holds are
    ever deleted; a person's own Copilot sessions are never touched.
    """


@sessions.command("list")
@_scope_options
@JSON_OPTION
def sessions_list(
    plan_path: Path | None,
    repository: str | None,
    branch: str | None,
    workdir: Path,
    copilot_home: Path | None,
    as_json: bool,
) -> None:
    """List the sessions of a repository and branch (and the plans' own, on any branch), each marked as held
    by a plan's task, an orphan of a known plan, another plan's, or not planeteer's.

    \b
    Example:
      planeteer sessions list --plan .planeteer/app.json
    """
    scope = SessionScope.of(workdir, plan_path, repository, branch)
    plans, _ = scope.read_plans()
    found = with_agent(copilot_home, lambda agent: sessions_in_scope(agent, scope, plans.values()))
    classified = classify(found, list(plans.values()))
    if as_json:
        click.echo(json.dumps([_session_json(s) for s in classified], indent=2, ensure_ascii=False))
        return
    out = console()
    out.print(
        f"sessions of {scope.repository or 'any repository'} on {scope.branch or 'any branch'}: {len(classified)}"
    )
    table = Table(show_edge=False, pad_edge=False)
    for column in ("Session", "Kind", "Plan / task", "Age", "Summary"):
        table.add_column(column, overflow="ellipsis")
    for s in sorted(classified, key=lambda s: (s.kind, s.info.session_id)):
        table.add_row(
            s.info.session_id,
            KIND_LABELS[s.kind],
            _owner(s),
            format_duration(s.age_seconds()),
            (s.info.summary or "").splitlines()[0][:60] if s.info.summary else "",
        )
    out.print(table)


def _owner(s: ClassifiedSession) -> str:
    task = f" / {s.task_id}" if s.task_id else ""
    status = f" ({s.task_status})" if s.task_status else ""
    return f"{s.plan_id or ''}{task}{status}"


def _session_json(s: ClassifiedSession) -> dict[str, Any]:
    return {
        "sessionId": s.info.session_id,
        "kind": s.kind,
        "planId": s.plan_id,
        "taskId": s.task_id,
        "taskStatus": s.task_status,
        "ageSeconds": s.age_seconds(),
        "summary": s.info.summary,
        "repository": s.info.repository,
        "branch": s.info.branch,
    }


@sessions.command("cleanup")
@_scope_options
@click.option("--older-than", help="Only sessions idle for longer than this (e.g. 7d, 12h).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@JSON_OPTION
def sessions_cleanup(
    plan_path: Path | None,
    repository: str | None,
    branch: str | None,
    workdir: Path,
    copilot_home: Path | None,
    older_than: str | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete planeteer's orphaned sessions: those of a readable plan that no task can still resume.

    \b
    Examples:
      planeteer sessions cleanup --dry-run
      planeteer sessions cleanup --plan .planeteer/app.json --older-than 7d --yes
    """
    scope = SessionScope.of(workdir, plan_path, repository, branch)
    age = parse_duration(older_than, "--older-than") if older_than else None
    confirm = _confirmation(yes)
    ids = with_agent(copilot_home, lambda agent: cleanup_orphans(agent, scope, age, dry_run, confirm))
    if as_json:
        click.echo(json.dumps({"dryRun": dry_run, "sessions": ids}))
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(ids)} session(s)" + (":" if ids else ""))
    for session_id in ids:
        click.echo(f"  {session_id}")


def _confirmation(yes: bool) -> Confirm:
    """--yes confirms; a person at a terminal is asked; anything else must pass --yes."""

    def confirm(ids: list[str]) -> bool:
        if yes:
            return True
        if not interactive():
            raise PlaneteerError(f"{len(ids)} session(s) would be deleted: pass --yes to confirm without a terminal")
        for session_id in ids:
            click.echo(f"  {session_id}", err=True)
        return click.confirm(f"Delete these {len(ids)} session(s)?", err=True)

    return confirm
