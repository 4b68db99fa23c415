"""`planeteer doctor`: whether planeteer can run here, one check per line, each saying what to do."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from planeteer_action.cli.common import COPILOT_HOME_OPTION, JSON_OPTION, WORKDIR_OPTION
from planeteer_action.cli.rules_options import rule_options
from planeteer_action.copilot.runtime import cli_version, default_copilot_home, find_copilot_cli
from planeteer_action.errors import EXIT_BAD_INPUT, EXIT_OK, PlaneteerError
from planeteer_action.gitinfo import git_context
from planeteer_action.plan.store import load_plan
from planeteer_action.redaction import redact_url
from planeteer_action.rules.resolve import RuleOptions, load_rules

_TOKEN_VARIABLES = ("COPILOT_GITHUB_TOKEN", "GH_TOKEN", "GITHUB_TOKEN")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    # A check that only informs (the repository) never makes the doctor fail.
    required: bool = True
    # The agent-rules check: each task's effective configuration, as `doctor --json` lists it.
    tasks: list[dict[str, Any]] = field(default_factory=list)


@click.command()
@click.option("--plan", "plan_path", type=click.Path(path_type=Path, dir_okay=False), help="Also check this plan.")
@WORKDIR_OPTION
@COPILOT_HOME_OPTION
@rule_options
@JSON_OPTION
def doctor(plan_path: Path | None, workdir: Path, copilot_home: Path | None, as_json: bool, rules: RuleOptions) -> None:
    """Check that planeteer can run here: the Copilot CLI and its version, authentication (or the BYOK
    provider in use), the repository and branch as Copilot will see them, and the plan folder. With --plan,
    also each task's effective agent configuration (allowed and denied tools, MCP servers, skills, model,
    reasoning effort, agent, env names) as `planeteer run` with the same options would give it, without
    starting any agent.

    Exit 0 when everything needed is in place, 2 otherwise.
    """
    checks = diagnose(workdir, copilot_home, plan_path, rules)
    ok = all(check.ok for check in checks if check.required)
    if as_json:
        entries = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
        tasks = [task for check in checks for task in check.tasks]
        click.echo(json.dumps({"ok": ok, "checks": entries, **({"tasks": tasks} if tasks else {})}, indent=2))
    else:
        for check in checks:
            click.echo(f"{'ok ' if check.ok else 'FAIL'} {check.name:15} {check.detail}")
            for task in check.tasks:
                click.echo(f"     {task['id']}: {_described(task)}")
    sys.exit(EXIT_OK if ok else EXIT_BAD_INPUT)


def diagnose(
    workdir: Path, copilot_home: Path | None, plan_path: Path | None, rules: RuleOptions | None = None
) -> list[Check]:
    checks = [_copilot_cli(), _credentials(copilot_home), _repository(workdir)]
    if plan_path is not None:
        checks += _plan(plan_path)
        if checks[-2].ok:
            checks.append(_agent_rules(plan_path, workdir.resolve(), rules or RuleOptions()))
    return checks


def _copilot_cli() -> Check:
    try:
        path = find_copilot_cli()
    except Exception as exc:  # whatever stops the CLI from being found is what the person must see
        return Check("copilot cli", False, str(exc))
    return Check("copilot cli", True, f"{path} ({cli_version(path) or 'version unknown'})")


def _credentials(copilot_home: Path | None) -> Check:
    base_url = os.environ.get("PLANETEER_PROVIDER_BASE_URL")
    if base_url:
        key = "key set" if os.environ.get("PLANETEER_PROVIDER_API_KEY") else "no PLANETEER_PROVIDER_API_KEY"
        return Check("model provider", True, f"BYOK {redact_url(base_url)} ({key})")
    token_vars = [name for name in _TOKEN_VARIABLES if os.environ.get(name)]
    if token_vars:
        return Check("authentication", True, f"token from {token_vars[0]}")
    if ((copilot_home or default_copilot_home()) / "config.json").exists():
        return Check("authentication", True, "Copilot CLI login found")
    return Check(
        "authentication",
        False,
        "no token and no login: run `copilot` and /login, set COPILOT_GITHUB_TOKEN, or use --offline",
    )


def _repository(workdir: Path) -> Check:
    context = git_context(workdir.resolve())
    if context.root is None:
        return Check("repository", False, f"{workdir} is not in a git repository", required=False)
    repository = context.repository or "(no GitHub remote: sessions are not filtered by repository)"
    return Check("repository", True, f"{repository} on {context.branch or '-'}", required=False)


def _plan(plan_path: Path) -> list[Check]:
    try:
        load_plan(plan_path)
        valid = Check("plan", True, f"{plan_path} is valid")
    except PlaneteerError as exc:
        valid = Check("plan", False, str(exc))
    folder = plan_path.resolve().parent
    writable = os.access(folder, os.W_OK)
    return [valid, Check("plan folder", writable, f"{folder} is {'writable' if writable else 'NOT writable'}")]


def _agent_rules(plan_path: Path, workdir: Path, options: RuleOptions) -> Check:
    """Each task's rules as a run would resolve them (MCP `${VAR}`s must be set); only names, never values."""
    plan = load_plan(plan_path)
    try:
        rules = load_rules(plan, workdir, options)
    except PlaneteerError as exc:
        return Check("agent rules", False, str(exc))
    tasks = []
    for task in plan.tasks:
        session = rules.session_rules(task)
        tasks.append(
            {
                "id": task.id,
                "allowTools": [str(p) for p in session.allow_tools],
                "denyTools": [str(p) for p in session.deny_tools],
                "mcpServers": list(session.mcp_servers),
                "skills": list(rules.skills),
                "model": session.model,
                "reasoningEffort": session.reasoning_effort,
                "agent": session.agent,
                "env": sorted(session.env),
                "writableDirectories": [str(path) for path in session.writable_directories],
            }
        )
    detail = "per task (the task's own setting, else the command line's, else .planeteer/settings.json's):"
    return Check("agent rules", True, detail, tasks=tasks)


def _described(task: dict[str, Any]) -> str:
    parts = [
        f"model {task['model'] or 'default'}",
        f"effort {task['reasoningEffort'] or 'default'}",
        f"agent {task['agent'] or 'default'}",
        f"allow {', '.join(task['allowTools']) or '-'}",
        f"deny {', '.join(task['denyTools']) or '-'}",
        f"MCP servers {', '.join(task['mcpServers']) or 'none'}",
        f"skills {', '.join(task['skills']) or 'none'}",
        f"env {', '.join(task['env']) or 'none'}",
        f"writes in the worktree{''.join(f', {path}' for path in task['writableDirectories'])}",
    ]
    return "; ".join(parts)
