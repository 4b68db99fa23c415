"""`python -m planeteer_action`: the action's entrypoint (`run`, the default) and its final step (`finalize`).

`run` restores the newest checkpoint on a re-run, runs the plan with checkpoints uploaded in the
background, and on cancellation saves at once and flushes what it can within the runner's grace period.
`finalize` runs under `if: always()`: it uploads the final checkpoint if the plan changed since the last
upload (also when `run` was killed), delivers the integration branch (`deliver`), and writes the outputs and
the job summary.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actions_toolkit import core

from planeteer_action.action.context import ActionContext, step_variables
from planeteer_action.action.delivery import action_deliverer, delivery_outputs
from planeteer_action.action.inputs import ActionInputs, mask_mcp_values, mask_secrets, read_inputs
from planeteer_action.action.report import ActionLog, outputs, set_outputs, summary_markdown
from planeteer_action.action.uploader import LEDGER, CheckpointSource, CheckpointUploader, UploadRecord, build_on
from planeteer_action.checkpoints.naming import default_state_name
from planeteer_action.checkpoints.packer import Ledger
from planeteer_action.checkpoints.restore import Restored, RestoreTarget, restore_checkpoint
from planeteer_action.delivery.deliverer import Delivered
from planeteer_action.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, PlaneteerError
from planeteer_action.github._twirp import ServiceError
from planeteer_action.github.artifacts import ArtifactService
from planeteer_action.github.availability import services
from planeteer_action.github.cache import ActionsCache
from planeteer_action.github.run_artifacts import RunArtifacts
from planeteer_action.gitinfo import git
from planeteer_action.plan.store import load_plan, write_atomic
from planeteer_action.rules.resolve import load_rules
from planeteer_action.runner import ProviderSettings, RunConfig, run_plan

# After a cancellation the runner sends SIGTERM 7.5 s after SIGINT; the clean stop takes part of that.
FLUSH_AFTER_INTERRUPT_SECONDS = 2.0
FLUSH_AFTER_RUN_SECONDS = 120.0


@dataclass(frozen=True)
class StepState:
    """Where this plan's state lives on the runner, shared by the `run` and `finalize` steps."""

    root: Path

    @property
    def copilot_home(self) -> Path:
        return self.root / "copilot-home"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads.json"

    @property
    def ledger(self) -> Path:
        return self.uploads.with_name(LEDGER)

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    def read_report(self) -> dict[str, Any]:
        try:
            data = json.loads(self.report.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def write_report(self, report: dict[str, Any]) -> None:
        write_atomic(self.report, json.dumps(report, indent=2).encode())


def _setup(context: ActionContext) -> tuple[ActionInputs, str, StepState]:
    mask_secrets(context.variables)
    inputs = read_inputs(context.variables, context.workspace)
    mask_mcp_values(inputs.rules, os.environ)
    plan = load_plan(inputs.plan)
    state_name = inputs.state_name or default_state_name(plan.id)
    state = StepState(context.runner_temp / "planeteer" / state_name)
    state.copilot_home.mkdir(parents=True, exist_ok=True)
    return inputs, state_name, state


def _source(
    context: ActionContext, inputs: ActionInputs, state_name: str, state: StepState, base: str | None
) -> CheckpointSource:
    return CheckpointSource(
        context=context,
        state_name=state_name,
        plan_path=inputs.plan,
        working_directory=inputs.working_directory,
        copilot_home=state.copilot_home,
        base_commit=base,
        key=inputs.state_key,
    )


def _warnings(context: ActionContext, inputs: ActionInputs) -> list[str]:
    if inputs.state_key is None and context.repository_private is not True:
        return [
            "Checkpoints hold the agents' session transcripts and are readable by everyone who can read this "
            "repository's workflow runs"
            + (" (it is public)" if context.repository_private is False else "")
            + ": set the `state-key` input to a secret to encrypt them."
        ]
    return []


def run_step(context: ActionContext) -> int:
    inputs, state_name, state = _setup(context)
    load_rules(load_plan(inputs.plan), inputs.working_directory, inputs.rules)  # bad rules: exit 2 before anything
    report = state.read_report()
    base = report.get("base_commit") or git(inputs.working_directory, "rev-parse", "HEAD")
    report = {"base_commit": base}
    state.write_report(report)
    deliverer = action_deliverer(context, inputs, load_plan(inputs.plan).id)
    if deliverer is not None:
        deliverer.check()  # before any agent starts: a token that cannot deliver fails here, with the fix
        report["deliver"] = inputs.deliver
        state.write_report(report)
    artifacts = ArtifactService.from_env(context.variables)
    cache = ActionsCache.from_env(context.variables)
    for warning in _warnings(context, inputs):
        core.warning(warning)
    for note in services(context.variables).notes:  # said once here, and again in the job summary
        core.warning(note)
    restored = _restore(context, inputs, state_name, state, cache)
    if restored is not None:
        core.info(restored.describe())
        report["restored"] = restored.to_json()
        state.write_report(report)
    _start_ledger(context, state, restored)
    uploader = None
    if artifacts is not None:
        source = _source(context, inputs, state_name, state, base)
        uploader = CheckpointUploader(source, artifacts, cache, state.uploads, core.warning)
    listeners: list[Any] = [ActionLog(), *([uploader] if uploader else []), *([deliverer] if deliverer else [])]
    outcome = asyncio.run(run_plan(_run_config(inputs, state, restored), listeners))
    report["recovered"] = outcome.recovery is not None
    report["status"] = outcome.status
    state.write_report(report)
    grace = FLUSH_AFTER_INTERRUPT_SECONDS if outcome.exit_code == EXIT_INTERRUPTED else FLUSH_AFTER_RUN_SECONDS
    if uploader is not None:
        if not uploader.finish(grace):
            core.info("the last checkpoint is still uploading; the final step finishes it")
        uploader.close()
    # After a cancellation the grace period belongs to the checkpoint; the final step pushes in any case.
    interrupted = outcome.exit_code == EXIT_INTERRUPTED
    if deliverer is not None and not deliverer.close(0.0 if interrupted else FLUSH_AFTER_RUN_SECONDS):
        core.info("a push is still running; the final step pushes again")
    return outcome.exit_code


def _restore(
    context: ActionContext, inputs: ActionInputs, state_name: str, state: StepState, cache: ActionsCache | None
) -> Restored | None:
    """On a re-run (or with `resume-from-run`), the newest checkpoint of the run, put back before anything runs."""
    resume_run = inputs.resume_from_run or (context.run_id if context.run_attempt > 1 else None)
    if resume_run is None:
        return None
    rest = RunArtifacts(inputs.github_token, context.repository, context.api_url) if inputs.github_token else None
    if rest is None:
        core.warning("no `github-token`: earlier attempts' artifacts cannot be listed; only the cache is tried")
    target = RestoreTarget(inputs.plan, inputs.working_directory, state.copilot_home, inputs.state_key)
    return restore_checkpoint(
        state_name,
        resume_run,
        load_plan(inputs.plan).id,
        rest,
        cache,
        target,
        core.warning,
        before_attempt=context.run_attempt if resume_run == context.run_id else None,
    )


def _start_ledger(context: ActionContext, state: StepState, restored: Restored | None) -> None:
    """What this attempt's uploads build on: the head just put back when it is of this run, else nothing."""
    if restored is not None and restored.run_id == context.run_id:
        build_on(restored, state.copilot_home, state.uploads)
    else:
        Ledger(run_id=str(context.run_id)).save(state.ledger)


def _run_config(inputs: ActionInputs, state: StepState, restored: Restored | None) -> RunConfig:
    provider = (
        ProviderSettings(inputs.provider_base_url, inputs.provider_type, inputs.provider_api_key)
        if inputs.provider_base_url
        else None
    )
    return RunConfig(
        plan_path=inputs.plan,
        working_directory=inputs.working_directory,
        concurrency=inputs.concurrency,
        task_timeout=inputs.task_timeout,
        model=inputs.model,
        provider=provider,
        copilot_home=state.copilot_home,
        github_token=inputs.copilot_token,
        offline=inputs.offline,
        on_interrupted=inputs.on_interrupted,
        recovery_source=restored.describe() if restored else None,
        isolation=inputs.isolation,
        rules=inputs.rules,
    )


def finalize_step(context: ActionContext) -> int:
    """Upload what the `run` step could not, deliver, then outputs and the job summary. Fails the job only when
    the delivery the run step checked fails."""
    try:
        inputs, state_name, state = _setup(context)
    except PlaneteerError:
        return 0  # the run step has already reported the bad input
    report = state.read_report()
    artifacts = ArtifactService.from_env(context.variables)
    if artifacts is not None:
        source = _source(context, inputs, state_name, state, report.get("base_commit"))
        uploader = CheckpointUploader(
            source, artifacts, ActionsCache.from_env(context.variables), state.uploads, core.warning
        )
        try:
            if uploader.upload_if_changed():
                core.info("uploaded the final checkpoint")
        except (ServiceError, OSError) as exc:
            core.warning(f"could not upload the final checkpoint: {exc}")
        finally:
            uploader.close()
    report["checkpoint"] = UploadRecord.load(state.uploads).artifact
    plan = load_plan(inputs.plan)
    plan_path = inputs.plan
    shown_path = (
        str(plan_path.relative_to(context.workspace)) if plan_path.is_relative_to(context.workspace) else str(plan_path)
    )
    set_outputs(outputs(plan, shown_path, report["checkpoint"]))
    notes = [*_warnings(context, inputs), *services(context.variables).notes]
    summary = summary_markdown(plan, report, notes, context.run_url)
    delivered, code = _deliver(context, inputs, report, f"Planeteer: {plan.name}", summary)
    set_outputs(delivery_outputs(delivered))
    if context.summary_file is not None:
        with context.summary_file.open("a", encoding="utf-8") as summary_file:
            summary_file.write(summary + (f"\n**Delivery:** {delivered.note}\n" if delivered.note else ""))
    return code


def _deliver(
    context: ActionContext, inputs: ActionInputs, report: dict[str, Any], title: str, body: str
) -> tuple[Delivered, int]:
    """Deliver what the run step checked it could (nothing when its check failed or `deliver: none`)."""
    deliverer = action_deliverer(context, inputs, load_plan(inputs.plan).id) if report.get("deliver") else None
    if deliverer is None:
        return Delivered(), 0
    try:
        delivered = deliverer.deliver(title, body)
    except PlaneteerError as exc:
        core.error(str(exc))
        return Delivered(), exc.exit_code
    core.info(delivered.note)
    return delivered, 0


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    step = args[0] if args else "run"
    if step not in ("run", "finalize"):
        core.error(f"unknown step {step!r}: use `python -m planeteer_action [run|finalize]`")
        sys.exit(EXIT_BAD_INPUT)
    try:
        context = ActionContext.from_env(step_variables())
        code = run_step(context) if step == "run" else finalize_step(context)
    except PlaneteerError as exc:
        core.error(str(exc))
        code = exc.exit_code
    except ServiceError as exc:
        core.error(str(exc))
        code = 1
    sys.exit(code)
