"""The action's inputs, read the Actions way (`INPUT_<NAME>` through actions-toolkit) and checked up front."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from actions_toolkit import core

from planeteer_action.delivery.deliverer import DELIVER_MODES, DeliverMode
from planeteer_action.engine.recovery import RECOVERY_CHOICES
from planeteer_action.engine.rules import ToolPattern
from planeteer_action.engine.wording import parse_duration
from planeteer_action.errors import ConfigError
from planeteer_action.plan.model import Isolation, RecoveryChoice
from planeteer_action.rules.mcp import expand
from planeteer_action.rules.resolve import RuleOptions, mcp_servers
from planeteer_action.rules.settings_file import RuleLayer

ISOLATION_MODES: tuple[str, ...] = get_args(Isolation)
SECRET_INPUTS = ("copilot-token", "provider-api-key", "github-token", "state-key")
# Denied in a workflow unless `allowed-tools` names them: planeteer itself delivers the result (`deliver`), and
# a workflow an agent wrote would run with this repository's secrets.
DEFAULT_DENIED_TOOLS = ("shell(git push)", "write(.github/workflows/**)")


@dataclass(frozen=True)
class ActionInputs:
    plan: Path
    working_directory: Path
    model: str | None
    concurrency: int
    task_timeout: float
    on_interrupted: RecoveryChoice
    provider_base_url: str | None
    provider_type: str
    offline: bool
    resume_from_run: int | None
    state_name: str | None
    isolation: Isolation = "worktree"
    deliver: DeliverMode = "pull-request"
    commit_plan: bool = False
    rules: RuleOptions = field(default_factory=RuleOptions)
    copilot_token: str | None = field(default=None, repr=False)
    provider_api_key: str | None = field(default=None, repr=False)
    github_token: str | None = field(default=None, repr=False)
    state_key: str | None = field(default=None, repr=False)


def _get(variables: Mapping[str, str], name: str) -> str | None:
    """An input as the runner names it (`INPUT_WORKING-DIRECTORY`), trimmed, as @actions/core reads it."""
    return variables.get(f"INPUT_{name.replace(' ', '_').upper()}", "").strip() or None


def mask_secrets(variables: Mapping[str, str]) -> None:
    """Register every secret input with the runner before anything could print it."""
    for name in SECRET_INPUTS:
        value = _get(variables, name)
        if value:
            core.set_secret(value)


def read_inputs(variables: Mapping[str, str], workspace: Path) -> ActionInputs:
    plan = _get(variables, "plan")
    if not plan:
        raise ConfigError("input `plan` is required: set it to the plan's path, e.g. .planeteer/my-plan.json")
    concurrency_text = _get(variables, "concurrency") or "4"
    if not concurrency_text.isdigit() or int(concurrency_text) < 1:
        raise ConfigError(f"input `concurrency` must be a whole number of at least 1, got {concurrency_text!r}")
    choice = _get(variables, "on-interrupted") or "resume"
    if choice not in RECOVERY_CHOICES:
        raise ConfigError(f"input `on-interrupted` must be one of {', '.join(RECOVERY_CHOICES)}, got {choice!r}")
    run_text = _get(variables, "resume-from-run")
    if run_text is not None and not run_text.isdigit():
        raise ConfigError(f"input `resume-from-run` must be a workflow run id (a number), got {run_text!r}")
    provider_type = _get(variables, "provider-type") or "openai"
    if provider_type not in ("openai", "azure", "anthropic"):
        raise ConfigError(f"input `provider-type` must be openai, azure or anthropic, got {provider_type!r}")
    offline_text = _boolean(variables, "offline")
    isolation = _get(variables, "isolation") or "worktree"
    if isolation not in ISOLATION_MODES:
        raise ConfigError(f"input `isolation` must be one of {', '.join(ISOLATION_MODES)}, got {isolation!r}")
    deliver = _get(variables, "deliver") or "pull-request"
    if deliver not in DELIVER_MODES:
        raise ConfigError(f"input `deliver` must be one of {', '.join(DELIVER_MODES)}, got {deliver!r}")
    state_name = _get(variables, "state-name")
    if state_name is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,80}", state_name):
        raise ConfigError("input `state-name` may use letters, digits, '.', '_' and '-' (at most 80)")
    workdir = workspace / (_get(variables, "working-directory") or ".")
    if not workdir.is_dir():
        raise ConfigError(f"input `working-directory` {workdir} is not a folder in the workspace")
    return ActionInputs(
        plan=workspace / plan,
        working_directory=workdir.resolve(),
        model=_get(variables, "model"),
        concurrency=int(concurrency_text),
        task_timeout=parse_duration(_get(variables, "task-timeout") or "10m", "input `task-timeout`"),
        on_interrupted=choice,
        provider_base_url=_get(variables, "provider-base-url"),
        provider_type=provider_type,
        offline=offline_text == "true",
        resume_from_run=int(run_text) if run_text else None,
        state_name=state_name,
        isolation=isolation,  # type: ignore[arg-type]  # checked against ISOLATION_MODES above
        deliver=deliver,  # type: ignore[arg-type]  # checked against DELIVER_MODES above
        commit_plan=_boolean(variables, "commit-plan") == "true",
        rules=_rule_inputs(variables, workspace),
        copilot_token=_get(variables, "copilot-token"),
        provider_api_key=_get(variables, "provider-api-key"),
        github_token=_get(variables, "github-token"),
        state_key=_get(variables, "state-key"),
    )


def _boolean(variables: Mapping[str, str], name: str) -> str:
    text = (_get(variables, name) or "false").lower()
    if text not in ("true", "false"):
        raise ConfigError(f"input `{name}` must be true or false, got {text!r}")
    return text


def _rule_inputs(variables: Mapping[str, str], workspace: Path) -> RuleOptions:
    """`allowed-tools`, `denied-tools` (the defaults added unless allowed), `mcp-config`, `skills-dir`."""
    allowed = _patterns(variables, "allowed-tools")
    denied = [*(p for p in DEFAULT_DENIED_TOOLS if p not in allowed), *_patterns(variables, "denied-tools")]
    mcp_text = _get(variables, "mcp-config")
    mcp_path = None
    if mcp_text is not None and not mcp_text.startswith("{"):
        mcp_path = workspace / mcp_text
        if not mcp_path.is_file():
            raise ConfigError(f"input `mcp-config`: no file {mcp_path}: give inline JSON or a path in the workspace")
    skills_dir = _get(variables, "skills-dir")
    if skills_dir is not None and not (workspace / skills_dir).is_dir():
        raise ConfigError(f"input `skills-dir` {workspace / skills_dir} is not a folder in the workspace")
    options = RuleOptions(
        layer=RuleLayer(allow_tools=tuple(allowed), deny_tools=tuple(dict.fromkeys(denied))),
        mcp_config=mcp_path,
        mcp_config_json=mcp_text if mcp_path is None else None,
        skills_dirs=((workspace / skills_dir).resolve(),) if skills_dir else (),
        writable_dirs=_folders(variables, "add-dirs", workspace),
        source="inputs",
    )
    mcp_servers(options)  # its form checked here; its `${VAR}`s when the run starts
    return options


def _folders(variables: Mapping[str, str], name: str, workspace: Path) -> tuple[Path, ...]:
    """Existing folders, one per line or comma-separated, relative to the workspace unless absolute."""
    folders: list[Path] = []
    for text in re.split(r"[\n,]", _get(variables, name) or ""):
        if text.strip():
            folder = (workspace / text.strip()).resolve()
            if not folder.is_dir():
                raise ConfigError(f"input `{name}`: {folder} is not a folder: create it or drop it from `{name}`")
            folders.append(folder)
    return tuple(dict.fromkeys(folders))


def _patterns(variables: Mapping[str, str], name: str) -> list[str]:
    """Patterns one per line or comma-separated (a comma inside parentheses belongs to its pattern)."""
    patterns: list[str] = []
    for line in (_get(variables, name) or "").splitlines():
        for text in re.split(r",(?![^()]*\))", line):
            if text.strip():
                try:
                    patterns.append(str(ToolPattern.parse(text)))
                except ValueError as exc:
                    raise ConfigError(f"input `{name}`: {exc}") from None
    return list(dict.fromkeys(patterns))


def mask_mcp_values(rules: RuleOptions, environ: Mapping[str, str]) -> None:
    """Register every value `${VAR}` takes in the MCP configuration with the runner before anything could print it."""
    for value in expand(mcp_servers(rules), environ, "input `mcp-config`").secrets:
        core.set_secret(value)
