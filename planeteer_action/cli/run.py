"""`planeteer run`: one execution of a plan, shown live on a terminal, as lines in a log, or as JSON events."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from planeteer_action.cli.common import COPILOT_HOME_OPTION, JSON_OPTION, PLAN_ARGUMENT, WORKDIR_OPTION, interactive
from planeteer_action.cli.display import JsonLines, LineLog, LiveView, RunView
from planeteer_action.cli.entry import loading
from planeteer_action.cli.rules_options import rule_options
from planeteer_action.delivery.local import local_delivery
from planeteer_action.engine.recovery import RECOVERY_CHOICES, RecoveryReport
from planeteer_action.engine.wording import format_duration, parse_duration
from planeteer_action.errors import ConfigError
from planeteer_action.plan.model import Isolation, Plan, RecoveryChoice, parse_time
from planeteer_action.plan.store import load_plan
from planeteer_action.rules.resolve import RuleOptions

# The Copilot SDK takes half a second to import: `runner` is imported when a run starts, so that the other
# commands answer at once.
if TYPE_CHECKING:
    from planeteer_action.runner import RunOutcome


@click.command()
@PLAN_ARGUMENT
@WORKDIR_OPTION
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
@COPILOT_HOME_OPTION
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
@click.option(
    "--isolation",
    type=click.Choice(["worktree", "shared"]),
    default="worktree",
    show_default=True,
    envvar="PLANETEER_ISOLATION",
    help="worktree: each task in its own git worktree and branch, merged into the branch planeteer/<plan id> "
    "(your checkout is never touched); shared: every task in the working directory itself, for agents that "
    "must share one environment (a running service, files outside git) or a folder that is not a git "
    "repository. Env: PLANETEER_ISOLATION.",
)
@click.option(
    "--push",
    is_flag=True,
    help="Push branch planeteer/<plan id> after every merge and at the end, to the remote the checkout "
    "fetches from (its push URL if set). Token: GITHUB_TOKEN or GH_TOKEN (contents: write).",
)
@click.option(
    "--pull-request",
    is_flag=True,
    help="--push, and open (or update) a pull request into the checked-out branch "
    "(token also needs pull-requests: write).",
)
@rule_options
@JSON_OPTION
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
    push: bool,
    pull_request: bool,
    isolation: Isolation,
    as_json: bool,
    rules: RuleOptions,
) -> None:
    """Run every runnable task of PLAN, each in its own Copilot session.

    \b
    Examples:
      planeteer run .planeteer/app.json
      planeteer run .planeteer/app.json -j 8 --task-timeout 20m --model gpt-5
      PLANETEER_PROVIDER_API_KEY=... planeteer run plan.json --provider-base-url http://localhost:8000/v1
      planeteer run plan.json --on-interrupted fresh --json | jq .
      GITHUB_TOKEN=$(gh auth token) planeteer run plan.json --pull-request
      planeteer run plan.json && git merge planeteer/<plan id>
      planeteer run plan.json --isolation shared     # every agent in the checkout itself
      planeteer run plan.json --deny-tool 'shell(git push)' --mcp-config mcp.json
    """
    _check_delivery_has_a_branch(push, pull_request, isolation)
    with loading():
        from planeteer_action.runner import ProviderSettings, RunConfig, run_plan

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
        on_interrupted=on_interrupted or (None if interactive() and not as_json else "resume"),
        isolation=isolation,
        rules=rules,
    )
    preview = load_plan(plan)
    delivery = local_delivery(workdir.resolve(), preview, push=push, pull_request=pull_request)
    view = _view(preview, as_json)
    choose = _ask_recovery if interactive() and not as_json else None
    try:
        outcome = asyncio.run(run_plan(config, [view, *delivery.listeners], choose=choose))
    finally:
        view.close()
    _report_outcome(outcome, as_json)
    delivery.finish(outcome.plan, plan)
    sys.exit(outcome.exit_code)


def _check_delivery_has_a_branch(push: bool, pull_request: bool, isolation: Isolation) -> None:
    """Delivery pushes the integration branch, which a shared-tree run never makes: refused before anything runs."""
    if (push or pull_request) and isolation == "shared":
        flag = "--pull-request" if pull_request else "--push"
        raise ConfigError(
            f"{flag} delivers the branch planeteer/<plan id> that only worktree isolation makes: "
            f"drop --isolation shared (PLANETEER_ISOLATION), or drop {flag}"
        )


def _view(plan: Plan, as_json: bool) -> RunView:
    """JSON lines for scripts, the live table on a terminal, timestamped lines elsewhere."""
    if as_json:
        return JsonLines()
    if sys.stderr.isatty():
        return LiveView(plan)
    return LineLog()


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
    for task_id, changes in report.rules_changed.items():
        console.print(f"{task_id}: its rules changed since its session started: {'; '.join(changes)}", markup=False)
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
    if outcome.removed_refs:
        click.echo(f"removed the plan's task worktrees and {len(outcome.removed_refs)} branch(es)/ref(s)", err=True)
    if outcome.status == "cleaned":
        click.echo("cleaned up; interrupted tasks are pending again and nothing was run", err=True)
    elif outcome.status == "interrupted":
        click.echo("interrupted: run the same command again to resume where it stopped", err=True)
    execution = outcome.plan.execution
    branch = execution.integration_branch if execution and execution.isolation == "worktree" else None
    if branch and outcome.status in ("complete", "failed"):
        click.echo(
            f"the result is on branch {branch}: take it with `git merge {branch}` (or `git switch {branch}`)", err=True
        )
