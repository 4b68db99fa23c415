"""`planeteer pull`: bring a workflow run's newest checkpoint home, to inspect or resume it locally."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import click

from planeteer_action.checkpoints.naming import default_state_name, states_in
from planeteer_action.checkpoints.restore import Restored, RestoreTarget, restore_checkpoint
from planeteer_action.cli.common import COPILOT_HOME_OPTION, WORKDIR_OPTION, fail
from planeteer_action.copilot.runtime import default_copilot_home
from planeteer_action.engine.sessions import PLAN_DIR
from planeteer_action.errors import EXIT_TASKS_FAILED, PlaneteerError
from planeteer_action.github._twirp import ServiceError
from planeteer_action.github.cache import ActionsCache
from planeteer_action.github.run_artifacts import RunArtifacts
from planeteer_action.plan.lock import PlanLock
from planeteer_action.plan.store import load_plan, save_plan


@dataclass(frozen=True)
class Pulled:
    restored: Restored
    plan_path: Path
    warnings: list[str]


@click.command()
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
@WORKDIR_OPTION
@COPILOT_HOME_OPTION
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
    token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN")
    if not token:
        fail("set GITHUB_TOKEN (or GH_TOKEN) to a token that can read the run's artifacts, e.g. $(gh auth token)")
    home = (copilot_home or default_copilot_home()).resolve()
    try:
        rest = RunArtifacts(token, repository, api_url)
        target = RestoreTarget(
            workdir / PLAN_DIR / f".pull-{run_id}.json",  # staging: the plan's own name is known once it is read
            workdir.resolve(),
            home,
            os.environ.get("PLANETEER_STATE_KEY") or None,
            apply_work=apply_changes,
        )
        pulled = pull_checkpoint(
            rest,
            run_id,
            state_name or (default_state_name(plan_id) if plan_id else None),
            plan_id,
            target,
            plan_path,
            ActionsCache.from_env(os.environ),  # the cache copy, when pulling from a workflow step
        )
    except ServiceError as exc:
        fail(str(exc), EXIT_TASKS_FAILED)
    for warning in pulled.warnings:
        click.echo(f"warning: {warning}", err=True)
    destination = pulled.plan_path
    click.echo(pulled.restored.describe())
    click.echo(f"plan: {destination}  sessions: {home}/session-state")
    if pulled.restored.base_commit and not apply_changes:
        click.echo(
            f"the run's work is not applied here: check out {pulled.restored.base_commit} and pass --apply-changes"
        )
    click.echo(f"next: planeteer status {destination}   then: planeteer run {destination}")


def pull_checkpoint(
    rest: RunArtifacts,
    run_id: int,
    state: str | None,
    plan_id: str | None,
    target: RestoreTarget,
    plan_path: Path | None,
    cache: ActionsCache | None = None,
) -> Pulled:
    """Restore the run's newest checkpoint of `state` (the only one in the run when None) as a re-run would.

    The plan is restored to the staging path in `target`, then moved under its lock to `plan_path`, by
    default `.planeteer/<plan id>.json` beside the staging file.
    """
    warnings: list[str] = []
    if state is None:
        states = sorted(states_in([a.name for a in rest.list(run_id, name_prefix="planeteer-")]))
        if len(states) != 1:
            found = ", ".join(states) if states else "none"
            raise PlaneteerError(f"run {run_id} holds checkpoints of these plans: {found}: pass --plan-id")
        state = states[0]
    restored = restore_checkpoint(state, run_id, plan_id, rest, cache, target, warnings.append)
    if restored is None:
        raise PlaneteerError("; ".join(warnings) or f"no checkpoint found in run {run_id}")
    staging = target.plan_path
    pulled = load_plan(staging)
    destination = plan_path or staging.with_name(f"{pulled.id}.json")
    with PlanLock(destination).held():
        staging.replace(destination)
        save_plan(pulled, destination)
    return Pulled(restored, destination, warnings)
