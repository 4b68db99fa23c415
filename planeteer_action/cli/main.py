"""The `planeteer` command: thin click commands over the engine; output and exit codes live here.

Exit codes: 0 all done, 1 a task failed or is blocked, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from planeteer_action import __version__
from planeteer_action.cli.display import (
    STATUS_STYLE,
    JsonLines,
    LineLog,
    LiveView,
    RunView,
    format_duration,
    task_duration,
)
from planeteer_action.copilot.runtime import cli_version, find_copilot_cli
from planeteer_action.engine.agent import Agent
from planeteer_action.engine.recovery import RECOVERY_CHOICES, RecoveryReport, delete_quietly
from planeteer_action.engine.sessions import (
    KIND_LABELS,
    ClassifiedSession,
    classify,
    cleanup_candidates,
    discover_plans,
    mark_deleted,
)
from planeteer_action.engine.wording import parse_duration
from planeteer_action.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_TASKS_FAILED, PlaneteerError
from planeteer_action.github._twirp import ServiceError
from planeteer_action.gitinfo import git_context
from planeteer_action.plan.graph import blocked_tasks
from planeteer_action.plan.model import Plan, RecoveryChoice, parse_time
from planeteer_action.plan.store import PlanLock, load_plan, save_plan

# The Copilot SDK takes half a second to import: only the commands that start the runtime import it
# (through `runner`), so `validate`, `status` and `retry` answer at once.
if TYPE_CHECKING:
    from planeteer_action.runner import RunOutcome

T = TypeVar("T")
PLAN_DIR = ".planeteer"

_PLAN = click.argument("plan", type=click.Path(path_type=Path, dir_okay=False))
_JSON = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of tables.")
_COPILOT_HOME = click.option(
    "--copilot-home",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="PLANETEER_COPILOT_HOME",
    help="Where Copilot keeps its sessions (default ~/.copilot). Env: PLANETEER_COPILOT_HOME.",
)
_WORKDIR = click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("."),
    show_default=True,
    envvar="PLANETEER_WORKDIR",
    help="The repository the agents work in. Env: PLANETEER_WORKDIR.",
)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"planeteer: error: {message}", err=True)
    sys.exit(code)


def _run_async(coro: Awaitable[T]) -> T:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except PlaneteerError as exc:
        _fail(str(exc), exc.exit_code)
        raise AssertionError("unreachable") from None
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
        raise AssertionError("unreachable") from None


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="planeteer")
def main() -> None:
    """Run a Planeteer plan with GitHub Copilot agents, in parallel, resumable after any interruption.

    A plan is the JSON file the Planeteer TUI writes (.planeteer/<id>.json): tasks with descriptions,
    acceptance criteria and dependencies. `planeteer run` gives each task to its own Copilot session,
    as many at once as the dependencies and --concurrency allow, and saves the plan after every change.
    Stop it any time (Ctrl-C); run it again and it resumes the interrupted tasks in their own sessions.

    \b
    Quick start:
      planeteer validate .planeteer/my-plan.json
      planeteer run .planeteer/my-plan.json            # uses your Copilot login
      planeteer run --offline .planeteer/my-plan.json  # built-in local model, no credentials
      planeteer status .planeteer/my-plan.json

    Exit codes: 0 all done, 1 a task failed or is blocked, 2 bad input, 130 interrupted.
    """


@main.command()
@_PLAN
@_WORKDIR
@click.option(
    "--concurrency",
    "-j",
    type=int,
    default=4,
    show_default=True,
    envvar="PLANETEER_CONCURRENCY",
    help="Most tasks running at once. Env: PLANETEER_CONCURRENCY.",
)
@click.option(
    "--task-timeout",
    default="10m",
    show_default=True,
    envvar="PLANETEER_TASK_TIMEOUT",
    help="Fail a task whose agent shows no activity for this long (e.g. 300, 90s, 10m, 1h). "
    "Env: PLANETEER_TASK_TIMEOUT.",
)
@click.option("--model", envvar="PLANETEER_MODEL", help="Model for the agents. Env: PLANETEER_MODEL.")
@click.option(
    "--provider-base-url",
    envvar="PLANETEER_PROVIDER_BASE_URL",
    help="Use your own OpenAI-compatible endpoint (BYOK) instead of Copilot's models; the key is "
    "read from PLANETEER_PROVIDER_API_KEY. Env: PLANETEER_PROVIDER_BASE_URL.",
)
@click.option(
    "--provider-type",
    type=click.Choice(["openai", "azure", "anthropic"]),
    default="openai",
    show_default=True,
    envvar="PLANETEER_PROVIDER_TYPE",
    help="API style of --provider-base-url.",
)
@_COPILOT_HOME
@click.option(
    "--offline",
    is_flag=True,
    envvar="PLANETEER_OFFLINE",
    help="Use the built-in local model: each task writes a note file through a real tool call. "
    "Rehearses a plan and its CI wiring without Copilot credentials.",
)
@click.option(
    "--on-interrupted",
    type=click.Choice(RECOVERY_CHOICES),
    envvar="PLANETEER_ON_INTERRUPTED",
    help="What to do with tasks an earlier run left unfinished, without asking: resume them in their "
    "own sessions, start them fresh, or clean up their sessions and run nothing. On a terminal "
    "planeteer asks; elsewhere the default is resume.",
)
@_JSON
def run(
    plan: Path,
    workdir: Path,
    concurrency: int,
    task_timeout: str,
    model: str | None,
    provider_base_url: str | None,
    provider_type: str,
    copilot_home: Path | None,
    offline: bool,
    on_interrupted: RecoveryChoice | None,
    as_json: bool,
) -> None:
    """Run every runnable task of PLAN, each in its own Copilot session.

    \b
    Examples:
      planeteer run .planeteer/app.json
      planeteer run .planeteer/app.json -j 8 --task-timeout 20m --model gpt-5
      PLANETEER_PROVIDER_API_KEY=... planeteer run plan.json --provider-base-url http://localhost:8000/v1
      planeteer run plan.json --on-interrupted fresh --json | jq .
    """
    from planeteer_action.runner import ProviderSettings, RunConfig, run_plan

    try:
        config = RunConfig(
            plan_path=plan,
            working_directory=workdir.resolve(),
            concurrency=concurrency,
            task_timeout=parse_duration(task_timeout, "--task-timeout"),
            model=model,
            provider=ProviderSettings(provider_base_url, provider_type, os.environ.get("PLANETEER_PROVIDER_API_KEY"))
            if provider_base_url
            else None,
            copilot_home=copilot_home.resolve() if copilot_home else None,
            offline=offline,
            on_interrupted=on_interrupted or (None if _interactive() and not as_json else "resume"),
        )
        preview = load_plan(plan)
    except PlaneteerError as exc:
        _fail(str(exc), exc.exit_code)
        return
    view: RunView
    if as_json:
        view = JsonLines()
    elif sys.stderr.isatty():
        view = LiveView(preview)
    else:
        view = LineLog()
    choose = _ask_recovery if _interactive() and not as_json else None
    try:
        outcome = _run_async(run_plan(config, [view], choose=choose))
    finally:
        view.close()
    _report_outcome(outcome, as_json)
    sys.exit(outcome.exit_code)


def _ask_recovery(report: RecoveryReport) -> RecoveryChoice:
    console = Console(stderr=True)
    table = Table(title="An earlier run of this plan did not finish", title_justify="left")
    for column in ("Task / session", "Was", "Found", "Last activity"):
        table.add_column(column)
    for task in report.unfinished:
        found = "its session exists: can resume" if task.state == "resumable" else "session gone: must start fresh"
        table.add_row(f"{task.task_id}\n{task.session_id or '-'}", task.status, found, _ago(task.last_activity))
    for orphan in report.orphans:
        stamp = orphan.modified_time.isoformat() if orphan.modified_time else None
        table.add_row(orphan.session_id, "orphan", "this plan's session, held by no task", _ago(stamp))
    console.print(table)
    console.print(
        "[bold]r[/]esume the interrupted tasks in their own sessions, start them [bold]f[/]resh, "
        "or [bold]c[/]lean up their sessions and run nothing?"
    )
    answer = click.prompt("Choice", type=click.Choice(["r", "f", "c"]), default="r", err=True)
    return {"r": "resume", "f": "fresh", "c": "cleanup"}[answer]  # type: ignore[return-value]


def _ago(stamp: str | None) -> str:
    moment = parse_time(stamp)
    if moment is None:
        return "-"
    seconds = (datetime.now(UTC) - moment).total_seconds()
    return f"{format_duration(max(seconds, 0))} ago"


def _report_outcome(outcome: RunOutcome, as_json: bool) -> None:
    if as_json:
        return
    if outcome.recovery is not None and outcome.recovery.deleted_sessions:
        click.echo(f"deleted {len(outcome.recovery.deleted_sessions)} session(s):", err=True)
        for session_id in outcome.recovery.deleted_sessions:
            click.echo(f"  {session_id}", err=True)
    if outcome.status == "cleaned":
        click.echo("cleaned up; interrupted tasks are pending again and nothing was run", err=True)
    elif outcome.status == "interrupted":
        click.echo("interrupted: run the same command again to resume where it stopped", err=True)


@main.command()
@_PLAN
@_JSON
def validate(plan: Path, as_json: bool) -> None:
    """Check PLAN without running it: JSON syntax, fields and types, duplicate ids, unknown
    dependencies and cycles. Changes nothing. Exit 0 when the plan can run, 2 when it cannot.

    \b
    Example:
      planeteer validate .planeteer/app.json
    """
    try:
        loaded = load_plan(plan)
    except PlaneteerError as exc:
        if as_json:
            click.echo(json.dumps({"valid": False, "error": str(exc)}))
            sys.exit(exc.exit_code)
        _fail(str(exc), exc.exit_code)
        return
    if as_json:
        click.echo(json.dumps({"valid": True, "planId": loaded.id, "tasks": len(loaded.tasks)}))
    else:
        click.echo(f"{plan}: valid plan {loaded.name!r} with {len(loaded.tasks)} tasks")


@main.command()
@_PLAN
@_JSON
def status(plan: Path, as_json: bool) -> None:
    """Show PLAN's progress: each task's status, session, attempts and time, and recovery decisions.

    Safe while a run is going on. Exit 0 when every task is done, 1 otherwise.

    \b
    Example:
      planeteer status .planeteer/app.json --json
    """
    try:
        loaded = load_plan(plan)
    except PlaneteerError as exc:
        _fail(str(exc), exc.exit_code)
        return
    summary = status_summary(loaded)
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print_status(loaded, summary)
    sys.exit(EXIT_OK if summary["complete"] else EXIT_TASKS_FAILED)


def status_summary(plan: Plan) -> dict[str, Any]:
    blocked = blocked_tasks(plan)
    tasks = []
    for task in plan.tasks:
        seconds = [task_duration(a.started_at, a.ended_at) for a in task.attempts]
        tasks.append(
            {
                "id": task.id,
                "title": task.title,
                "status": "blocked" if task.id in blocked else task.status,
                "sessionId": task.session_id,
                "attempts": [a.to_json_dict() for a in task.attempts],
                "durationSeconds": round(sum(s for s in seconds if s is not None), 3),
                "result": task.agent_result,
            }
        )
    counts: dict[str, int] = {}
    for task in plan.tasks:
        shown = "blocked" if task.id in blocked else task.status
        counts[shown] = counts.get(shown, 0) + 1
    execution = plan.execution
    return {
        "planId": plan.id,
        "name": plan.name,
        "complete": counts.get("done", 0) == len(tasks),
        "counts": counts,
        "tasks": tasks,
        "recoveries": [r.to_json_dict() for r in execution.recoveries] if execution else [],
    }


def _console() -> Console:
    """Tables for people: on a pipe, wide enough that session ids are never cut."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def _print_status(plan: Plan, summary: dict[str, Any]) -> None:
    console = _console()
    done = summary["counts"].get("done", 0)
    tally = ", ".join(f"{n} {status}" for status, n in summary["counts"].items())
    console.print(f"[bold]{plan.name}[/] — {done}/{len(plan.tasks)} done ({tally})")
    table = Table(show_edge=False, pad_edge=False)
    for column in ("Task", "Status", "Session", "Attempts", "Time", "Result"):
        minimum = 10 if column == "Result" else None
        table.add_column(column, overflow="ellipsis", no_wrap=True, min_width=minimum)
    for entry in summary["tasks"]:
        result = (entry["result"] or "").strip().splitlines()
        table.add_row(
            entry["id"],
            f"[{STATUS_STYLE.get(entry['status'], '')}]{entry['status']}[/]",
            entry["sessionId"] or "",
            str(len(entry["attempts"])),
            format_duration(entry["durationSeconds"]) if entry["attempts"] else "",
            (result[0][:120] if result else ""),
        )
    console.print(table)
    for task in plan.tasks:
        if len(task.attempts) > 1 or any(a.session_deleted for a in task.attempts):
            console.print(f"[bold]{task.id}[/] attempts:")
            for a in task.attempts:
                gone = " (session deleted)" if a.session_deleted else ""
                console.print(
                    f"  #{a.number} {a.session_id}{gone} — {a.reason}: {a.outcome}"
                    + (f" — {a.error}" if a.error else "")
                )
    for recovery in summary["recoveries"]:
        console.print(
            f"recovery at {recovery['at']}: {recovery['choice']}"
            + (f", resumed {', '.join(recovery.get('resumed', []))}" if recovery.get("resumed") else "")
            + (f", restarted {', '.join(recovery.get('restarted', []))}" if recovery.get("restarted") else "")
            + (
                f", deleted {len(recovery.get('deletedSessions', []))} session(s)"
                if recovery.get("deletedSessions")
                else ""
            )
        )


@main.command()
@_PLAN
@click.argument("tasks", nargs=-1, required=True)
def retry(plan: Path, tasks: tuple[str, ...]) -> None:
    """Put failed or interrupted TASKS of PLAN back to pending so the next run starts them afresh.

    The tasks they blocked run again too. Their attempt history is kept.

    \b
    Example:
      planeteer retry .planeteer/app.json api-client
      planeteer run .planeteer/app.json
    """
    try:
        loaded = load_plan(plan)
        with PlanLock(plan).held():
            ids = {t.id for t in loaded.tasks}
            for task_id in tasks:
                if task_id not in ids:
                    raise PlaneteerError(f"no task {task_id!r} in {plan}: `planeteer status {plan}` lists the ids")
                task = loaded.task(task_id)
                if task.status not in ("failed", "interrupted", "in_progress"):
                    raise PlaneteerError(
                        f"task {task_id!r} is {task.status}, not failed or interrupted: nothing to retry"
                    )
            unblocked = blocked_tasks(loaded)
            for task_id in tasks:
                task = loaded.task(task_id)
                attempt = task.current_attempt
                if attempt is not None and attempt.outcome in ("running", "interrupted"):
                    attempt.outcome = "superseded"
                task.status = "pending"
                task.agent_result = None
            unblocked -= blocked_tasks(loaded)
            loaded.touch()
            save_plan(loaded, plan)
    except PlaneteerError as exc:
        _fail(str(exc), exc.exit_code)
        return
    click.echo(f"reset to pending: {', '.join(tasks)}")
    if unblocked:
        click.echo(f"no longer blocked: {', '.join(sorted(unblocked))}")


@main.command()
@click.option("--plan", "plan_path", type=click.Path(path_type=Path, dir_okay=False), help="Also check this plan.")
@_WORKDIR
@_COPILOT_HOME
@_JSON
def doctor(plan_path: Path | None, workdir: Path, copilot_home: Path | None, as_json: bool) -> None:
    """Check that planeteer can run here: the Copilot CLI and its version, authentication (or the BYOK
    provider in use), the repository and branch as Copilot will see them, and the plan folder.

    Exit 0 when everything needed is in place, 2 otherwise.
    """
    checks: list[tuple[str, bool, str]] = []
    try:
        path = find_copilot_cli()
        version = cli_version(path)
        checks.append(("copilot cli", True, f"{path} ({version or 'version unknown'})"))
    except PlaneteerError as exc:
        checks.append(("copilot cli", False, str(exc)))
    except Exception as exc:
        checks.append(("copilot cli", False, str(exc)))
    base_url = os.environ.get("PLANETEER_PROVIDER_BASE_URL")
    if base_url:
        key = "key set" if os.environ.get("PLANETEER_PROVIDER_API_KEY") else "no PLANETEER_PROVIDER_API_KEY"
        checks.append(("model provider", True, f"BYOK {base_url} ({key})"))
    else:
        token_vars = [v for v in ("COPILOT_GITHUB_TOKEN", "GH_TOKEN", "GITHUB_TOKEN") if os.environ.get(v)]
        home = copilot_home or Path(os.environ.get("COPILOT_HOME", Path.home() / ".copilot"))
        logged_in = (home / "config.json").exists()
        detail = (
            f"token from {token_vars[0]}"
            if token_vars
            else (
                "Copilot CLI login found"
                if logged_in
                else "no token and no login: run `copilot` and /login, set COPILOT_GITHUB_TOKEN, or use --offline"
            )
        )
        checks.append(("authentication", bool(token_vars) or logged_in, detail))
    context = git_context(workdir.resolve())
    checks.append(
        (
            "repository",
            context.root is not None,
            f"{context.repository or '(no GitHub remote: sessions are not filtered by repository)'} "
            f"on {context.branch or '-'}"
            if context.root
            else f"{workdir} is not in a git repository",
        )
    )
    if plan_path is not None:
        folder = plan_path.resolve().parent
        try:
            load_plan(plan_path)
            checks.append(("plan", True, f"{plan_path} is valid"))
        except PlaneteerError as exc:
            checks.append(("plan", False, str(exc)))
        writable = os.access(folder, os.W_OK)
        checks.append(("plan folder", writable, f"{folder} is {'writable' if writable else 'NOT writable'}"))
    ok = all(passed for name, passed, _ in checks if name != "repository")
    if as_json:
        click.echo(
            json.dumps({"ok": ok, "checks": [{"name": n, "ok": p, "detail": d} for n, p, d in checks]}, indent=2)
        )
    else:
        for name, passed, detail in checks:
            click.echo(f"{'ok ' if passed else 'FAIL'} {name:15} {detail}")
    sys.exit(EXIT_OK if ok else EXIT_BAD_INPUT)


@main.group()
def sessions() -> None:
    """List and clean up the Copilot sessions planeteer created in this repository.

    Sessions are found through Copilot's own session store, filtered by repository and branch (by default
    the current ones). Only sessions whose ids follow planeteer's scheme and that no task of a readable plan
    still holds are ever deleted; a person's own Copilot sessions are never touched.
    """


def _session_scope(
    plan_path: Path | None, repository: str | None, branch: str | None, workdir: Path
) -> tuple[dict[Path, Plan], Plan | None, str | None, str | None]:
    """The plans whose records decide what is whose: the one asked about plus those in .planeteer/."""
    context = git_context(workdir.resolve())
    plans = discover_plans(workdir / PLAN_DIR)
    chosen = load_plan(plan_path) if plan_path else None
    if plan_path is not None and chosen is not None:
        plans = {path: plan for path, plan in plans.items() if plan.id != chosen.id}
        plans[plan_path] = chosen
    return plans, chosen, repository or context.repository, branch or context.branch


def _with_agent(copilot_home: Path | None, work: Callable[[Agent], Awaitable[T]]) -> T:
    from planeteer_action.runner import copilot_runtime

    async def go() -> T:
        async with copilot_runtime(copilot_home.resolve() if copilot_home else None) as agent:
            return await work(agent)

    return _run_async(go())


_SCOPE_OPTIONS = [
    click.option(
        "--plan",
        "plan_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="The plan whose sessions to single out (plans in .planeteer/ are always consulted).",
    ),
    click.option("--repository", help="OWNER/REPO to look in (default: this checkout's GitHub remote)."),
    click.option("--branch", help="Branch to look in (default: the current branch)."),
    _WORKDIR,
    _COPILOT_HOME,
]


def _scope_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_SCOPE_OPTIONS):
        func = option(func)
    return func


@sessions.command("list")
@_scope_options
@_JSON
def sessions_list(
    plan_path: Path | None,
    repository: str | None,
    branch: str | None,
    workdir: Path,
    copilot_home: Path | None,
    as_json: bool,
) -> None:
    """List the sessions of a repository and branch, each marked as held by a plan's task, an orphan of
    a known plan, another plan's, or not planeteer's.

    \b
    Example:
      planeteer sessions list --plan .planeteer/app.json
    """
    try:
        plans, _, repo, br = _session_scope(plan_path, repository, branch, workdir)
    except PlaneteerError as exc:
        _fail(str(exc), exc.exit_code)
        return
    found = _with_agent(copilot_home, lambda agent: agent.list_sessions(repo, br))
    classified = classify(found, list(plans.values()))
    if as_json:
        click.echo(json.dumps([_session_json(s) for s in classified], indent=2, ensure_ascii=False))
        return
    console = _console()
    console.print(f"sessions of {repo or 'any repository'} on {br or 'any branch'}: {len(classified)}")
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
    console.print(table)


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
@_JSON
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
    try:
        plans, chosen, repo, br = _session_scope(plan_path, repository, branch, workdir)
        age = parse_duration(older_than, "--older-than") if older_than else None
    except PlaneteerError as exc:
        _fail(str(exc), exc.exit_code)
        return

    async def work(agent: Agent) -> list[str]:
        doomed = cleanup_candidates(classify(await agent.list_sessions(repo, br), list(plans.values())), age)
        if chosen is not None:
            doomed = [s for s in doomed if s.plan_id == chosen.id]
        ids = [s.info.session_id for s in doomed]
        if dry_run or not ids:
            return ids
        if not yes:
            if not _interactive():
                raise PlaneteerError(
                    f"{len(ids)} session(s) would be deleted: pass --yes to confirm without a terminal"
                )
            for session_id in ids:
                click.echo(f"  {session_id}", err=True)
            if not click.confirm(f"Delete these {len(ids)} session(s)?", err=True):
                return []
        for session_id in ids:
            await delete_quietly(agent, session_id)
        _record_deletions(plans, set(ids))
        return ids

    ids = _with_agent(copilot_home, work)
    if as_json:
        click.echo(json.dumps({"dryRun": dry_run, "sessions": ids}))
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(ids)} session(s)" + (":" if ids else ""))
    for session_id in ids:
        click.echo(f"  {session_id}")


def _record_deletions(plans: dict[Path, Plan], ids: set[str]) -> None:
    """Note the deletions in the attempt histories, so `status` shows them and recovery skips them."""
    for path, plan in plans.items():
        if mark_deleted(plan, ids):
            with PlanLock(path).held():
                plan.touch()
                save_plan(plan, path)


@main.command()
@click.option("--repository", required=True, help="OWNER/REPO the workflow ran in.")
@click.option("--run", "run_id", type=int, required=True, help="The workflow run id (from its URL).")
@click.option("--plan-id", help="Which plan's checkpoint, when the run holds several.")
@click.option("--state-name", help="The action's state-name input, if the workflow set one.")
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the plan (default .planeteer/<plan id>.json under --workdir).",
)
@click.option(
    "--apply-changes",
    is_flag=True,
    help="Also apply the work the run's finished tasks did to this checkout (it must be at the run's commit).",
)
@_WORKDIR
@_COPILOT_HOME
@click.option(
    "--api-url",
    envvar="GITHUB_API_URL",
    default="https://api.github.com",
    show_default=True,
    help="REST API root (GitHub Enterprise Server: https://HOST/api/v3). Env: GITHUB_API_URL.",
)
def pull(
    repository: str,
    run_id: int,
    plan_id: str | None,
    state_name: str | None,
    plan_path: Path | None,
    apply_changes: bool,
    workdir: Path,
    copilot_home: Path | None,
    api_url: str,
) -> None:
    """Fetch a workflow run's newest checkpoint so the execution can be inspected and resumed here.

    The plan goes into the plan folder and the sessions into the Copilot home, exactly as a re-run
    would restore them; then `planeteer status` shows the run and `planeteer run` resumes it.
    Needs a token that can read the run's artifacts in GITHUB_TOKEN or GH_TOKEN; an encrypted
    checkpoint needs its key in PLANETEER_STATE_KEY.

    \b
    Example:
      GITHUB_TOKEN=$(gh auth token) planeteer pull --repository octo/app --run 123456 --apply-changes
      planeteer status .planeteer/app.json && planeteer run .planeteer/app.json
    """
    from planeteer_action.checkpoints.naming import default_state_name, states_in
    from planeteer_action.checkpoints.restore import RestoreTarget, restore_checkpoint
    from planeteer_action.github.cache import ActionsCache
    from planeteer_action.github.run_artifacts import RunArtifacts

    token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN")
    if not token:
        _fail("set GITHUB_TOKEN (or GH_TOKEN) to a token that can read the run's artifacts, e.g. $(gh auth token)")
        return
    warnings: list[str] = []
    try:
        rest = RunArtifacts(token, repository, api_url)
        state = state_name or (default_state_name(plan_id) if plan_id else None)
        if state is None:
            states = sorted(states_in([a.name for a in rest.list(run_id, name_prefix="planeteer-")]))
            if len(states) != 1:
                found = ", ".join(states) if states else "none"
                raise PlaneteerError(f"run {run_id} holds checkpoints of these plans: {found}: pass --plan-id")
            state = states[0]
        home = (copilot_home or Path(os.environ.get("COPILOT_HOME", Path.home() / ".copilot"))).resolve()
        staging = workdir / PLAN_DIR / f".pull-{run_id}.json"
        target = RestoreTarget(
            staging,
            workdir.resolve(),
            home,
            os.environ.get("PLANETEER_STATE_KEY") or None,
            apply_work=apply_changes,
        )
        cache = ActionsCache.from_env(os.environ)  # the cache copy, when pulling from a workflow step
        restored = restore_checkpoint(state, run_id, plan_id, rest, cache, target, warnings.append)
        if restored is None:
            raise PlaneteerError("; ".join(warnings) or f"no checkpoint found in run {run_id}")
        pulled = load_plan(staging)
        destination = plan_path or workdir / PLAN_DIR / f"{pulled.id}.json"
        with PlanLock(destination).held():
            staging.replace(destination)
        save_plan(pulled, destination)
    except PlaneteerError as exc:
        _fail(str(exc), exc.exit_code)
        return
    except ServiceError as exc:
        _fail(str(exc), EXIT_TASKS_FAILED)
        return
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(restored.describe())
    click.echo(f"plan: {destination}  sessions: {home}/session-state")
    if restored.base_commit and not apply_changes:
        click.echo(f"the run's work is not applied here: check out {restored.base_commit} and pass --apply-changes")
    click.echo(f"next: planeteer status {destination}   then: planeteer run {destination}")
