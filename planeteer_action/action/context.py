"""What the runner tells a step: where it is (run, attempt, repository, API host, scratch space), and the
step's variables, part of which the launcher (launch.js) hands over through a pipe rather than the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from planeteer_action.errors import ConfigError

STEP_VARIABLES_FD_ENV = "PLANETEER_STEP_VARIABLES_FD"
"""Names the pipe that launch.js writes the step's INPUT_* and ACTIONS_* variables to, as one JSON object."""


def step_variables() -> Mapping[str, str]:
    """The step's variables: this process's environment, and what the launcher handed over (the pipe can be
    read once, so the entrypoint calls this once and passes the result on, in `ActionContext.variables`).

    Run without the launcher (`python -m planeteer_action` straight from a step), it is the environment alone.
    """
    variables = dict(os.environ)
    fd_text = variables.pop(STEP_VARIABLES_FD_ENV, None)
    if fd_text is None:
        return variables
    try:
        with open(int(fd_text), "rb", closefd=True) as pipe:
            handed = json.loads(pipe.read())
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"could not read the step's inputs from the launcher (fd {fd_text}: {error}); run this entrypoint"
            " through the action's launch.js, or without PLANETEER_STEP_VARIABLES_FD"
        ) from None
    if not isinstance(handed, dict):
        raise ConfigError("the launcher handed over no step variables; run this entrypoint through action.yml")
    variables.update({str(name): str(value) for name, value in handed.items()})
    return variables


@dataclass(frozen=True)
class ActionContext:
    repository: str
    run_id: int
    run_attempt: int
    api_url: str
    server_url: str
    workspace: Path
    runner_temp: Path
    summary_file: Path | None
    repository_private: bool | None
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)
    """All the step's variables (`step_variables`): inputs, and the runner's service credentials."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionContext:
        missing = [name for name in ("GITHUB_REPOSITORY", "GITHUB_RUN_ID") if not env.get(name)]
        if missing:
            raise ConfigError(
                f"{', '.join(missing)} not set: this entrypoint runs inside GitHub Actions; use `planeteer run` locally"
            )
        return cls(
            repository=env["GITHUB_REPOSITORY"],
            run_id=int(env["GITHUB_RUN_ID"]),
            run_attempt=int(env.get("GITHUB_RUN_ATTEMPT") or 1),
            api_url=env.get("GITHUB_API_URL") or "https://api.github.com",
            server_url=env.get("GITHUB_SERVER_URL") or "https://github.com",
            workspace=Path(env.get("GITHUB_WORKSPACE") or os.getcwd()),
            runner_temp=Path(env.get("RUNNER_TEMP") or "/tmp"),
            summary_file=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
            repository_private=_visibility(env.get("GITHUB_EVENT_PATH")),
            variables=env,
        )

    def run_url(self, run_id: int | None = None) -> str:
        """A run's page (this one by default), on github.com or the Enterprise Server host the runner names."""
        return f"{self.server_url}/{self.repository}/actions/runs/{run_id or self.run_id}"


def _visibility(event_path: str | None) -> bool | None:
    """Whether the repository is private, from the event payload; None when the payload does not say."""
    if not event_path:
        return None
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
        private = event.get("repository", {}).get("private")
    except (OSError, ValueError, AttributeError):
        return None
    return private if isinstance(private, bool) else None
