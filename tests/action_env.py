"""A GitHub Actions job, as far as the action's Python entrypoint can tell, for end-to-end tests.

`Machine` is one runner of one attempt of a job: its own RUNNER_TEMP, HOME and checkout, the GITHUB_*
variables the runner sets, the runtime token the fake services mint for that attempt, and the INPUT_*
variables exactly as the runner names them for a composite action's steps (`INPUT_WORKING-DIRECTORY`).
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
from fakes.github_services import FakeGitHubServices
from helpers import git, processes_with_env, wait_for

REPO = Path(__file__).resolve().parents[1]
CLI = Path(os.environ.get("COPILOT_CLI_PATH") or REPO / ".tools/node_modules/.bin/copilot")
REPOSITORY = "octo-org/planeteer"
MARKER_ENV = "PLANETEER_ACTION_TEST_MARKER"
ACTION = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
GITHUB_SCRIPT = Path(__file__).with_name("github_script.js")
JOB_TOKEN = "ghs_job-token-of-the-workflow-0123456789"
"""`github.token`, which github-script's `github-token` input falls back to."""
_OUTPUT_HEADER = re.compile(r"^([A-Za-z0-9_.-]+)<<(.+)$")


def make_origin(path: Path, plan: Mapping[str, Any], plan_path: str, files: Mapping[str, str] = {}) -> str:
    """A repository holding the plan (and `files`) in one commit on `main`; returns the commit id."""
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    target = path / plan_path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(plan, indent=2) + "\n", encoding="utf-8")
    for name, text in {"README.md": "# test repository\n", **files}.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text, encoding="utf-8")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "Add the plan")
    return git(path, "rev-parse", "HEAD")


def checkout(origin: Path, sha: str, dest: Path) -> Path:
    """What actions/checkout leaves: a fresh clone at `sha` on branch main, its origin on github.com."""
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(origin), str(dest)], check=True, capture_output=True)
    git(dest, "checkout", "--quiet", "-B", "main", sha)
    git(dest, "remote", "set-url", "origin", f"https://github.com/{REPOSITORY}.git")
    return dest


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

    def env(self, step_dir: Path) -> dict[str, str]:
        home = self.root / "home"
        for folder in (home, self.runner_temp, step_dir):
            folder.mkdir(parents=True, exist_ok=True)
        event = self.root / "event.json"
        event.write_text(
            json.dumps(
                {
                    "repository": {"full_name": REPOSITORY, "private": self.private_repository},
                    "inputs": {},
                    "ref": "refs/heads/main",
                }
            )
        )
        output, summary = step_dir / "github-output", step_dir / "step-summary"
        for command_file in ("github-output", "step-summary", "github-env", "github-path", "github-state"):
            (step_dir / command_file).touch()  # the runner creates them before the step starts
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64",
            "RUNNER_TEMP": str(self.runner_temp),
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_SHA": self.sha,
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_REF_NAME": "main",
            "GITHUB_EVENT_NAME": "workflow_dispatch",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_ENV": str(step_dir / "github-env"),
            "GITHUB_PATH": str(step_dir / "github-path"),
            "GITHUB_STATE": str(step_dir / "github-state"),
            "COPILOT_CLI_PATH": str(CLI),
            MARKER_ENV: self.marker,
            # GITHUB_REPOSITORY, GITHUB_RUN_ID, GITHUB_RUN_ATTEMPT, GITHUB_API_URL, GITHUB_SERVER_URL and
            # ACTIONS_RUNTIME_TOKEN, ACTIONS_RESULTS_URL, ACTIONS_CACHE_SERVICE_VERSION:
            **self.fake.runtime_env(self.run_id, self.attempt),
        }
        self.runtime_tokens.append(env["ACTIONS_RUNTIME_TOKEN"])
        env.update({f"INPUT_{name.replace(' ', '_').upper()}": value for name, value in self.inputs.items()})
        env.update(self.extra_env)
        return env

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
        """A github-script step: the runner's environment for a JavaScript step, the job's exports, the
        step's INPUT_* (from the machine's inputs) and github-script's own inputs."""
        self._steps += 1
        step_dir = self.root / f"step{self._steps}-{spec.get('id') or 'script'}"
        env = {**self.env(step_dir), **self.job_env}
        with_inputs = spec.get("with", {})
        env["INPUT_SCRIPT"] = with_inputs["script"].replace("${{ github.action_path }}", str(REPO))
        env["INPUT_GITHUB-TOKEN"] = self.inputs.get("github-token") or JOB_TOKEN
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
