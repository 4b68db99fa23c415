"""A GitHub Actions job, as far as the action's Python entrypoint can tell, for end-to-end tests.

`Machine` is one runner of one attempt of a job: its own RUNNER_TEMP, HOME and checkout, and for each step
exactly the variables the runner sets for that kind of step (runner_env's table, which cites the runner
source of each: a node step's ACTIONS_* credentials, GITHUB_*, RUNNER_*, INPUT_* named as Handler.cs names
them), with the runtime token the fake services mint for that attempt and the step's `env:` and `with:`
expanded from action.yml.
`Machine.run_action()` runs the action's steps the way action.yml does: every actions/github-script step in
order, under node, through `github_script.js` (what that action does with its `script`), the `run` step and
then, as `if: always()`, the `finalize` step (each of which launches `python -m planeteer_action <step>`
through launch.js), each with its own GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and GITHUB_ENV file, as separate
processes with the workspace as their working directory. What a step writes to GITHUB_ENV reaches the
later steps' environment, as the runner does; the install step's exports (the venv's Python, the CLI) are
given as if it had run. Other `uses:` steps (setup-python, cache) have nothing to do here.

The environment is built from scratch (nothing of the test process's own GITHUB_*, INPUT_* or ACTIONS_*
leaks in, which matters when the suite itself runs in GitHub Actions). Every process a step starts, down to
the agents' shell commands, carries a marker in its environment, so `kill_marked` can end exactly those.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from action_repository import REPOSITORY
from fakes.github_services import FakeGitHubServices
from helpers import processes_with_env, wait_for
from runner_env import StepKind, evaluate, step_environment

REPO = Path(__file__).resolve().parents[1]
CLI = Path(os.environ.get("COPILOT_CLI_PATH") or REPO / ".tools/node_modules/.bin/copilot")
MARKER_ENV = "PLANETEER_ACTION_TEST_MARKER"
ACTION = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
GITHUB_SCRIPT = Path(__file__).with_name("github_script.js")
JOB_TOKEN = "ghs_job-token-of-the-workflow-0123456789"
"""`github.token`, which github-script's `github-token` input falls back to."""
COMPOSITE = "octo-org/planeteer-action@v1"
"""How the job uses this action (`uses:`): the github context its steps inherit."""
FILE_COMMANDS = {
    "GITHUB_OUTPUT": "github-output",
    "GITHUB_STEP_SUMMARY": "step-summary",
    "GITHUB_ENV": "github-env",
    "GITHUB_PATH": "github-path",
    "GITHUB_STATE": "github-state",
}
"""Each step's file commands, and the file each gets in the step's folder."""
GITHUB_SCRIPT_DEFAULTS = {
    "debug": "false",
    "user-agent": "actions/github-script",
    "result-encoding": "json",
    "retries": "0",
    "retry-exempt-status-codes": "400,401,403,404,422",
}
"""github-script's action.yml defaults, which the runner adds as INPUT_* (inputs without a default left out)."""
JOB_CONTEXT = {
    "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main", "GITHUB_REF_TYPE": "branch",
    "GITHUB_REF_PROTECTED": "false", "GITHUB_BASE_REF": "", "GITHUB_HEAD_REF": "",
    "GITHUB_EVENT_NAME": "workflow_dispatch", "GITHUB_WORKFLOW": "Run a Planeteer plan",
    "GITHUB_WORKFLOW_REF": f"{REPOSITORY}/.github/workflows/run-plan.yml@refs/heads/main",
    "GITHUB_RUN_NUMBER": "7", "GITHUB_RETENTION_DAYS": "90", "GITHUB_ACTOR": "octocat", "GITHUB_ACTOR_ID": "583231",
    "GITHUB_TRIGGERING_ACTOR": "octocat", "GITHUB_REPOSITORY_ID": "424242",
    "GITHUB_REPOSITORY_OWNER": REPOSITORY.split("/")[0], "GITHUB_REPOSITORY_OWNER_ID": "9919",
    "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64", "RUNNER_NAME": "GitHub Actions 1000000001",
}  # fmt: skip
"""What the server's job message (and the runner's host) give every step, the same in every test."""
_OUTPUT_HEADER = re.compile(r"^([A-Za-z0-9_.-]+)<<(.+)$")


def parse_outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT's file-command format: `name<<DELIMITER`, value lines, `DELIMITER` (or `name=value`)."""
    outputs: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        header = _OUTPUT_HEADER.match(line)
        if header:
            name, delimiter = header.groups()
            value: list[str] = []
            while lines[index] != delimiter:
                value.append(lines[index])
                index += 1
            index += 1
            outputs[name] = "\n".join(value)
        else:
            name, separator, value_text = line.partition("=")
            assert separator, f"not a file command: {line!r}"
            outputs[name] = value_text
    return outputs


@dataclass
class StepResult:
    step: str
    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    seconds: float = 0.0

    def warnings(self) -> list[str]:
        return [line.removeprefix("::warning::") for line in self.stdout.splitlines() if line.startswith("::warning::")]

    def errors(self) -> list[str]:
        return [line.removeprefix("::error::") for line in self.stdout.splitlines() if line.startswith("::error::")]


@dataclass
class ActionRun:
    """Both steps of one attempt; the action's outputs are the finalize step's (see action.yml)."""

    run: StepResult
    finalize: StepResult

    @property
    def outputs(self) -> dict[str, str]:
        return self.finalize.outputs

    @property
    def summary(self) -> str:
        return self.run.summary + self.finalize.summary

    @property
    def stdout(self) -> str:
        return self.run.stdout + self.finalize.stdout

    def warnings(self) -> list[str]:
        return self.run.warnings() + self.finalize.warnings()


@dataclass
class Machine:
    """One runner executing one attempt of the job that uses the action."""

    fake: FakeGitHubServices
    run_id: int
    attempt: int
    root: Path
    workspace: Path
    sha: str
    inputs: Mapping[str, str]
    extra_env: Mapping[str, str] = field(default_factory=dict)
    private_repository: bool = True
    ghes: bool = False
    """A GitHub Enterprise Server job: no results service (no artifacts v4, no cache v2), its own host."""
    cache_mode: str = ""
    """The job variable actions_cache_mode (none, read, write, write-only); empty: not set."""
    id_token: bool = False
    """`permissions: id-token: write`."""
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    runtime_tokens: list[str] = field(default_factory=list)
    """Every ACTIONS_RUNTIME_TOKEN a step of this machine was given (a secret like the inputs')."""
    job_env: dict[str, str] = field(default_factory=lambda: {"PLANETEER_PYTHON": sys.executable})
    """What earlier steps wrote to GITHUB_ENV (here: the install step's export of the venv's Python)."""
    _steps: int = 0
    _prepared: bool = False

    @property
    def runner_temp(self) -> Path:
        return self.root / "runner-temp"

    @property
    def state_root(self) -> Path:
        """Where the action keeps a plan's state on the runner (`$RUNNER_TEMP/planeteer/<state>`)."""
        return self.runner_temp / "planeteer"

    def _runner_variables(
        self, kind: StepKind, step_dir: Path, uses: str = "", in_action: bool = True
    ) -> dict[str, str]:
        """What the runner itself sets for a step of `kind` (runner_env lists each name and its source);
        `uses`: the step's action (`actions/github-script@v9`); `in_action`: a step of this composite action."""
        for folder in (self.root / "home", self.runner_temp, step_dir):
            folder.mkdir(parents=True, exist_ok=True)
        event = self.root / "event.json"
        event.write_text(json.dumps({"repository": {"full_name": REPOSITORY, "private": self.private_repository}}))
        files = {name: step_dir / file_name for name, file_name in FILE_COMMANDS.items()}
        for path in files.values():
            path.touch()  # FileCommandManager creates them before the step starts
        services = self.fake.runtime_env(self.run_id, self.attempt, ghes=self.ghes)  # this attempt's token, URLs
        token = services["ACTIONS_RUNTIME_TOKEN"]
        action_repository, _, action_ref = (uses or COMPOSITE).partition("@")
        variables = {
            **{name: services[name] for name in ("GITHUB_API_URL", "GITHUB_SERVER_URL", "GITHUB_REPOSITORY")},
            **{name: services[name] for name in ("GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB")},
            **{name: str(path) for name, path in files.items()},
            "GITHUB_ACTIONS": "true",
            "CI": "true",
            "GITHUB_GRAPHQL_URL": f"{services['GITHUB_API_URL']}/graphql",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_SHA": self.sha,
            "GITHUB_WORKFLOW_SHA": self.sha,
            "GITHUB_EVENT_PATH": str(event),
            **JOB_CONTEXT,
            "GITHUB_ACTION": step_dir.name,
            "RUNNER_TOOL_CACHE": str(self.root / "toolcache"),
            "RUNNER_TEMP": str(self.runner_temp),
            "RUNNER_WORKSPACE": str(self.workspace.parent),
        }
        if in_action:  # a composite's steps get a copy of its github context; a nested action sets its own
            variables |= {"GITHUB_ACTION_REPOSITORY": action_repository, "GITHUB_ACTION_REF": action_ref}
            variables["GITHUB_ACTION_PATH"] = str(REPO)
        if self.id_token:  # `permissions: id-token: write`: both kinds of step, the runtime token's value
            self.runtime_tokens.append(token)
            variables["ACTIONS_ID_TOKEN_REQUEST_URL"] = f"{self.fake.results_url}idtoken"
            variables["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = token
        if kind == "node":
            self.runtime_tokens.append(token)
            variables |= {"ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_RUNTIME_URL": f"{self.fake.results_url}pipelines/"}
            # Where the server has them (not GHES): the results service and the v2 cache flag ("True").
            variables |= {k: services[k] for k in ("ACTIONS_RESULTS_URL", "ACTIONS_CACHE_SERVICE_V2") if k in services}
            if self.cache_mode:
                variables["ACTIONS_CACHE_MODE"] = self.cache_mode
        return variables

    def _base_env(self) -> dict[str, str]:
        """The runner process's own environment, which every step inherits, and the job's GITHUB_ENV exports."""
        home = self.root / "home"
        path = os.environ.get("PATH", "/usr/bin:/bin")
        base = {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", MARKER_ENV: self.marker}
        return {**base, "COPILOT_CLI_PATH": str(CLI), **self.job_env, **self.extra_env}

    def _expression_context(self) -> dict[str, str]:
        """What action.yml's `${{ }}` expressions read: the action's inputs (given or default)."""
        context = {"github.token": JOB_TOKEN, "github.action_path": str(REPO)}
        for name, spec in ACTION["inputs"].items():
            default = evaluate(str(spec.get("default", "")), context)
            context[f"inputs.{name}"] = self.inputs.get(name, default)
        return context

    def start(self, step: str) -> tuple[subprocess.Popen[bytes], Path]:
        """Start action.yml's step of this id (`run`, `finalize`) as the runner does, after the github-script
        steps before `run` (once); its output goes to files in its folder."""
        if not self._prepared:
            self._prepared = True
            for earlier in ACTION["runs"]["steps"]:
                if earlier.get("id") == "run":
                    break
                if str(earlier.get("uses", "")).startswith("actions/github-script@"):
                    self.collect(earlier.get("id") or "script", *self._start_script(earlier), timeout=60)
        (spec,) = [s for s in ACTION["runs"]["steps"] if s.get("id") == step]
        return self._start_script(spec)

    def _start_script(self, spec: dict[str, Any]) -> tuple[subprocess.Popen[bytes], Path]:
        """A github-script step: the runner's variables for a node step, the job's exports, the step's
        `env:` and its `with:` inputs (over github-script's own defaults) as INPUT_*."""
        self._steps += 1
        step_dir = self.root / f"step{self._steps}-{spec.get('id') or 'script'}"
        context = self._expression_context()
        step_env = {name: evaluate(str(value), context) for name, value in spec.get("env", {}).items()}
        with_inputs = {name: evaluate(str(value), context) for name, value in spec.get("with", {}).items()}
        env = step_environment(
            "node",
            self._runner_variables("node", step_dir, spec["uses"]),
            inputs={**GITHUB_SCRIPT_DEFAULTS, **with_inputs},
            step_env={**self._base_env(), **step_env},
        )
        with (step_dir / "stdout").open("wb") as out, (step_dir / "stderr").open("wb") as err:
            (step_dir / "started").write_text(str(time.monotonic()))
            process = subprocess.Popen(
                ["node", str(GITHUB_SCRIPT)],
                cwd=self.workspace,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        return process, step_dir

    def run_later_step(self, script: str) -> StepResult:
        """A `run:` step of the user's job after the action (not in the composite): what it sees of the job."""
        self._steps += 1
        step_dir = self.root / f"step{self._steps}-later"
        runner = self._runner_variables("run", step_dir, in_action=False)
        env = step_environment("run", runner, step_env=self._base_env())
        (step_dir / "started").write_text(str(time.monotonic()))
        with (step_dir / "stdout").open("wb") as out, (step_dir / "stderr").open("wb") as err:
            process = subprocess.Popen(["bash", "-ec", script], cwd=self.workspace, env=env, stdout=out, stderr=err)
        return self.collect("later", process, step_dir, timeout=60)

    def collect(self, step: str, process: subprocess.Popen[bytes], step_dir: Path, timeout: float) -> StepResult:
        code = process.wait(timeout=timeout)
        self.job_env.update(parse_outputs((step_dir / "github-env").read_text(encoding="utf-8")))
        return StepResult(
            step=step,
            exit_code=code,
            stdout=(step_dir / "stdout").read_text(encoding="utf-8"),
            stderr=(step_dir / "stderr").read_text(encoding="utf-8"),
            outputs=parse_outputs((step_dir / "github-output").read_text(encoding="utf-8")),
            summary=(step_dir / "step-summary").read_text(encoding="utf-8"),
            seconds=time.monotonic() - float((step_dir / "started").read_text()),
        )

    def step(self, step: str, timeout: float = 120) -> StepResult:
        process, step_dir = self.start(step)
        try:
            return self.collect(step, process, step_dir, timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    def run_action(self, timeout: float = 120) -> ActionRun:
        """The composite action: `run`, then `finalize` whatever `run` did."""
        run = self.step("run", timeout)
        return ActionRun(run, self.step("finalize", timeout))

    def interrupted_action(
        self,
        ready: Callable[[], bool],
        signum: int,
        timeout: float = 60,
    ) -> ActionRun:
        """`run` stopped by `signum` once `ready()` holds (a cancellation, or a lost process), then `finalize`.

        After SIGKILL the rest of the step's process tree is ended as well, as the runner does.
        """
        process, step_dir = self.start("run")
        try:
            wait_for(lambda: ready() or process.poll() is not None, timeout, "the run to reach its kill point")
            assert process.poll() is None, "the run step ended before it could be interrupted:\n" + (
                step_dir / "stdout"
            ).read_text(encoding="utf-8")
            # A lost process: the launcher and the Python it started die at once, as with the runner's tree kill.
            victims = [process.pid, *children(process.pid)] if signum == signal.SIGKILL else [process.pid]
            for pid in victims:
                os.kill(pid, signum)
            run = self.collect("run", process, step_dir, timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if signum == signal.SIGKILL:
            # The CLI notices its host is gone and stops; the runner then kills whatever is left.
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not marked_processes(self.marker), 10, "the Copilot CLI to stop")
            kill_marked(self.marker)
        return ActionRun(run, self.step("finalize", timeout))

    def leftovers(self) -> list[int]:
        """Processes this machine's steps started that are still alive (none, after a clean finish)."""
        return marked_processes(self.marker)

    def cleanup(self) -> None:
        kill_marked(self.marker)


def children(pid: int) -> list[int]:
    """The live child processes of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def marked_processes(marker: str) -> list[int]:
    """Live processes carrying this machine's marker (started by its steps, however deep)."""
    return processes_with_env({MARKER_ENV: marker})


def kill_marked(marker: str) -> None:
    """SIGKILL, by pid, every process this machine's steps started that is still alive; wait till they are gone."""
    for pid in marked_processes(marker):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not marked_processes(marker), 10, "the killed processes to go")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
