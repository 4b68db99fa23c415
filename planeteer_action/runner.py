"""One execution of a plan, end to end, shared by the CLI and the GitHub Action.

Load and check the plan (nothing runs and nothing changes on a bad one), take the plan's lock, start the
Copilot runtime (and the offline model when asked), inspect what an earlier run left unfinished and apply
the chosen recovery, run the executor, and on SIGINT/SIGTERM stop cleanly: abort the turns, mark the tasks
interrupted, save, stop the runtime. A second signal (or a stop that overruns its grace period) saves the
plan as it stands and exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn
from urllib.parse import urlsplit, urlunsplit

from planeteer_action.copilot.agent import CopilotAgent
from planeteer_action.copilot.offline_model import OFFLINE_MODEL, OfflineModelServer, provider_config
from planeteer_action.copilot.runtime import (
    default_copilot_home,
    find_copilot_cli,
    kill_tagged_processes,
    plan_process_tag,
)
from planeteer_action.engine.agent import Agent
from planeteer_action.engine.events import Listener, LockTakenOver
from planeteer_action.engine.executor import Executor, ExecutorOptions
from planeteer_action.engine.recovery import RecoveryReport, apply_choice, inspect
from planeteer_action.engine.workspaces import FinishStep
from planeteer_action.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_TASKS_FAILED, ConfigError, PlanSaveFailed
from planeteer_action.gitinfo import GitContext, git_context
from planeteer_action.plan.lock import PlanLock
from planeteer_action.plan.model import Execution, Isolation, Plan, Recovery, RecoveryChoice, utc_now
from planeteer_action.plan.operations import count_statuses
from planeteer_action.plan.store import BackgroundPlanWriter, load_plan
from planeteer_action.rules.record import changes_since_started
from planeteer_action.rules.resolve import PlanRules, RuleOptions, load_rules
from planeteer_action.worktrees.tasks import PlanWorktrees
from planeteer_action.worktrees.workspaces import WorktreeWorkspaces

# The Actions runner sends SIGTERM 7.5 s after SIGINT; a clean stop must be well inside that.
STOP_GRACE_SECONDS = 4.0
# Past this, the process exits whatever its event loop is doing (a forced exit's own save is bounded
# too): a person's Ctrl-C always ends the run within 5 s.
HARD_EXIT_SECONDS = 4.8

ChooseRecovery = Callable[[RecoveryReport], RecoveryChoice]


@dataclass(frozen=True)
class ProviderSettings:
    """A custom OpenAI-compatible (BYOK) model provider. The key is never saved or shown."""

    base_url: str
    type: str = "openai"
    api_key: str | None = field(default=None, repr=False)

    def as_sdk_config(self) -> dict[str, str]:
        config = {"type": self.type, "base_url": self.base_url}
        if self.api_key:
            config["api_key"] = self.api_key
        return config


@dataclass(frozen=True)
class RunConfig:
    plan_path: Path
    working_directory: Path
    concurrency: int = 4
    task_timeout: float = 600.0
    model: str | None = None
    provider: ProviderSettings | None = None
    copilot_home: Path | None = None
    github_token: str | None = field(default=None, repr=False)
    offline: bool = False
    on_interrupted: RecoveryChoice | None = None
    recovery_source: str | None = None
    isolation: Isolation = "shared"
    # The agents' rules from the command line or the action's inputs (`model` above is their model).
    rules: RuleOptions = field(default_factory=RuleOptions)
    # A test's seam: called after each step of finishing an isolated task (see engine.workspaces).
    on_finish_step: Callable[[str, FinishStep], None] | None = None


@dataclass
class RunOutcome:
    status: Literal["complete", "failed", "interrupted", "cleaned"]
    counts: dict[str, int]
    plan: Plan
    recovery: Recovery | None = None
    removed_refs: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"complete": EXIT_OK, "cleaned": EXIT_OK, "failed": EXIT_TASKS_FAILED}.get(self.status, EXIT_INTERRUPTED)


def check_config(config: RunConfig) -> None:
    if config.concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {config.concurrency}")
    if config.task_timeout <= 0:
        raise ConfigError(f"--task-timeout must be a positive number of seconds, got {config.task_timeout:g}")
    if not config.working_directory.is_dir():
        raise ConfigError(f"working directory {config.working_directory} does not exist: pass an existing folder")
    if config.offline and config.provider is not None:
        raise ConfigError("--offline uses the built-in model: drop --provider-base-url, or drop --offline")


@contextlib.asynccontextmanager
async def agent_runtime(
    copilot_home: Path | None,
    *,
    model: str | None = None,
    provider: ProviderSettings | None = None,
    github_token: str | None = None,
    offline: bool = False,
    process_tag: str | None = None,
    withheld_variables: Collection[str] = (),
) -> AsyncIterator[Agent]:
    """The Copilot CLI (and the offline model behind it when asked), stopped and cleaned up on exit.

    With a `process_tag` (a plan's, taken under its lock), whatever an earlier runtime of that tag left
    running (a killed run's agents' background commands) is stopped first.
    """
    if process_tag is not None:
        await asyncio.to_thread(kill_tagged_processes, process_tag)
    server = OfflineModelServer() if offline else None
    sdk_provider = provider.as_sdk_config() if provider else None
    if server is not None:
        sdk_provider = provider_config(server.start())
        model = model or OFFLINE_MODEL
    agent = CopilotAgent(
        cli_path=find_copilot_cli(),
        copilot_home=copilot_home or default_copilot_home(),
        model=model,
        provider=sdk_provider,
        github_token=github_token,
        process_tag=process_tag,
        withheld_variables=withheld_variables,
    )
    try:
        await agent.start()
        yield agent
    finally:
        try:
            await asyncio.wait_for(agent.stop(), timeout=STOP_GRACE_SECONDS)
        finally:
            if server is not None:
                server.stop()


def record_execution(plan: Plan, config: RunConfig, context: GitContext) -> None:
    """What recovery needs later to find this plan's sessions: repository, branch, directory, model."""
    execution = plan.execution or Execution()
    execution.repository = context.repository
    execution.branch = context.branch
    execution.working_directory = str(config.working_directory)
    execution.model = OFFLINE_MODEL if config.offline and not config.model else config.model
    execution.provider_type = "offline" if config.offline else (config.provider.type if config.provider else None)
    execution.provider_base_url = _without_credentials(config.provider.base_url) if config.provider else None
    execution.started_at = execution.started_at or utc_now()
    execution.isolation = config.isolation
    plan.execution = execution


def open_worktrees(plan: Plan, config: RunConfig) -> PlanWorktrees | None:
    """The plan's task worktrees when isolated, their integration branch made at the run's base commit
    (recorded in the plan: a resumed run keeps the first run's). Refuses to switch isolation mid-plan."""
    execution = plan.execution or Execution()
    unfinished = [t.id for t in plan.tasks if t.status in ("in_progress", "interrupted")]
    if execution.isolation not in (None, config.isolation) and unfinished:
        raise ConfigError(
            f"plan {plan.id!r} was run with --isolation {execution.isolation} and {unfinished[0]!r} is unfinished: "
            f"run it again with --isolation {execution.isolation}, or `planeteer retry` the unfinished tasks first"
        )
    if config.isolation == "shared":
        return None
    worktrees = PlanWorktrees.open(config.working_directory, plan.id, execution.base_commit)
    worktrees.ensure_integration()
    execution.base_commit = worktrees.base_commit
    execution.integration_branch = worktrees.integration_branch
    plan.execution = execution
    return worktrees


def _without_credentials(url: str) -> str:
    """The plan records which endpoint was used, never a key someone put in its URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def run_plan(
    config: RunConfig,
    listeners: list[Listener],
    choose: ChooseRecovery | None = None,
) -> RunOutcome:
    """Run the plan at `config.plan_path` to the end, or until interrupted. Raises PlaneteerError on bad input."""
    check_config(config)
    options = _rule_options(config)
    # A bad plan, or bad rules, are refused before anything, even the lock file, is written.
    load_rules(load_plan(config.plan_path), config.working_directory, options)
    lock = PlanLock(config.plan_path)
    lock.acquire()
    if lock.taken_over is not None:
        owner = lock.taken_over
        for listener in listeners:
            listener(LockTakenOver(pid=owner.pid, host=owner.host, since=owner.since))
    try:
        # Read again under the lock: another run, or a hand edit, may have changed it since. The rules applied
        # are this plan's, checked again: a problem found now is refused as before, and the lock file goes.
        plan = load_plan(config.plan_path)
        return await _run_locked(plan, config, load_rules(plan, config.working_directory, options), listeners, choose)
    finally:
        lock.release()


def _rule_options(config: RunConfig) -> RuleOptions:
    """The command line's rules, with its `--model` as every task's model unless a task names its own."""
    layer = dataclasses.replace(config.rules.layer, model=config.model or config.rules.layer.model)
    return dataclasses.replace(config.rules, layer=layer)


async def _run_locked(
    plan: Plan,
    config: RunConfig,
    rules: PlanRules,
    listeners: list[Listener],
    choose: ChooseRecovery | None,
) -> RunOutcome:
    saver = BackgroundPlanWriter(config.plan_path)
    interrupts = _Interrupts(saver, plan)
    try:
        context = git_context(config.working_directory)
        worktrees = open_worktrees(plan, config)  # a checkout that cannot hold worktrees is refused before anything
        runtime = agent_runtime(
            config.copilot_home,
            model=config.model,
            provider=config.provider,
            github_token=config.github_token,
            offline=config.offline,
            process_tag=plan_process_tag(config.plan_path),
            withheld_variables=rules.mcp.variables,
        )
        async with runtime as agent:
            record_execution(plan, config, context)
            recovery = None
            # Isolated tasks' sessions carry their task branch, not the checkout's: list the repository's.
            branch = context.branch if worktrees is None else None
            report = await inspect(plan, agent, context.repository, branch)
            report = dataclasses.replace(report, rules_changed=changes_since_started(plan, rules, report))
            if report.needs_decision:
                choice = config.on_interrupted or (choose(report) if choose else "resume")
                recovery = await apply_choice(plan, report, choice, agent, source=config.recovery_source)
                await saver.save(plan, None)
                if choice == "cleanup":
                    removed = await asyncio.to_thread(worktrees.remove) if worktrees else []
                    return RunOutcome("cleaned", count_statuses(plan), plan, recovery, removed)
            options = ExecutorOptions(
                working_directory=config.working_directory,
                concurrency=config.concurrency,
                quiet_timeout=config.task_timeout,
                workspaces=WorktreeWorkspaces(worktrees) if worktrees else None,
                on_finish_step=config.on_finish_step,
                rules=rules,
            )
            executor = interrupts.executor = Executor(plan, agent, options, saver, listeners)
            result = await executor.run()
            # Every task merged: their worktrees and branches have served. The integration branch stays, and so
            # do the abandoned attempts' refs the plan names, until a clean-up.
            complete = result.status == "complete"
            removed = await asyncio.to_thread(worktrees.remove, False) if worktrees is not None and complete else []
            return RunOutcome(result.status, result.counts, plan, recovery, removed)
    except asyncio.CancelledError:
        # Interrupted before any task ran: the plan on disk is as it was (or as recovery saved it).
        return RunOutcome("interrupted", count_statuses(plan), plan)
    finally:
        interrupts.close()


class _Interrupts:
    """SIGINT and SIGTERM during a run. The first stops it cleanly; a second, or a clean stop still going
    after STOP_GRACE_SECONDS, saves what is known and exits; HARD_EXIT_SECONDS after the first, the process
    exits whatever its event loop is doing.
    """

    def __init__(self, saver: BackgroundPlanWriter, plan: Plan) -> None:
        self.executor: Executor | None = None
        self._saver = saver
        self._plan = plan
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        self._signals = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._last_resort = threading.Timer(HARD_EXIT_SECONDS, os._exit, args=(EXIT_INTERRUPTED,))
        self._last_resort.daemon = True
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(signum, self._on_signal)
        if self._main is not None and self._main.cancelling():
            # A signal came before these handlers, and asyncio's own handler cancelled the run: the same
            # deadlines hold, even if something below swallows that cancellation.
            self._signals = 1
            self._last_resort.start()
            self._deadline = self._loop.call_later(STOP_GRACE_SECONDS, self._force_exit)

    def close(self) -> None:
        """Stop listening (a signal now is a KeyboardInterrupt: exit 130), finish the saves, then disarm."""
        if self._deadline is not None:
            self._deadline.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._loop.remove_signal_handler(signum)
        # asyncio puts SIGTERM back to its default (death with 143); like SIGINT, it must mean exit 130.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        self._saver.close()
        self._last_resort.cancel()

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals > 1:
            self._force_exit()
        self._last_resort.start()
        if self.executor is not None:
            self.executor.interrupt()
        elif self._main is not None:
            self._main.cancel()
        self._deadline = self._loop.call_later(STOP_GRACE_SECONDS, self._force_exit)

    def _force_exit(self) -> NoReturn:
        """Save what is known (waiting a bounded time) and leave now. A save that does not land leaves the
        previous plan, whole, for the next run to recover.

        The Copilot CLI runs in its own session; its stdin closes with us and it shuts its children down.
        """
        try:
            if self.executor is not None:
                self.executor.mark_running_interrupted()
            else:
                self._saver.save_blocking(self._plan, None)
        except PlanSaveFailed as exc:
            print(f"planeteer: error: {exc}", file=sys.stderr, flush=True)
        os._exit(EXIT_INTERRUPTED)
