"""The form of each agent setting, checked where it is written: one line per problem, naming the place and the fix.

The same checks serve a task in the plan, `.planeteer/settings.json`, the command line and the action's inputs,
so a setting means the same thing wherever it comes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from planeteer_action.engine.rules import ToolPattern
from planeteer_action.plan.model import Task

# The Copilot SDK's own `ReasoningEffort` (copilot/session.py: Literal["low", "medium", "high", "xhigh", "max"]).
REASONING_EFFORTS = ("low", "medium", "high", "xhigh", "max")
# Model ids as Copilot lists them (`gpt-5`, `claude-sonnet-4.5`, `o3-mini`) or a provider names them.
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}")
_AGENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# planeteer tags every agent process with PLANETEER_RUNTIME_TAG to stop them later; a task may not change that.
_RESERVED_ENV_PREFIX = "PLANETEER_"
# A task key that is one of these, ignoring case, '_' and '-', is a misspelt setting, not the TUI's own field.
_MEANT = {
    "allowtool": "allowTools",
    "allowedtools": "allowTools",
    "allowedtool": "allowTools",
    "availabletools": "allowTools",
    "denytool": "denyTools",
    "deniedtools": "denyTools",
    "deniedtool": "denyTools",
    "disallowedtools": "denyTools",
    "excludedtools": "denyTools",
    "effort": "reasoningEffort",
    "reasoning": "reasoningEffort",
    "reasoningefforts": "reasoningEffort",
    "environment": "env",
    "envvars": "env",
    "envs": "env",
    "models": "model",
    "customagent": "agent",
    "agentname": "agent",
}


def model_problem(value: str, where: str) -> str | None:
    if _MODEL.fullmatch(value):
        return None
    return f"{where}: model {value!r} is not a model id: write it as Copilot lists it, e.g. gpt-5 or claude-sonnet-4.5"


def effort_problem(value: str, where: str) -> str | None:
    if value in REASONING_EFFORTS:
        return None
    return f"{where}: reasoning effort {value!r} is unknown: use one of {', '.join(REASONING_EFFORTS)}"


def agent_problem(value: str, where: str) -> str | None:
    if _AGENT.fullmatch(value):
        return None
    return f"{where}: agent {value!r} is not an agent name: use letters, digits, '.', '_' and '-'"


def pattern_problems(patterns: Iterable[str], where: str) -> list[str]:
    problems = []
    for text in patterns:
        try:
            ToolPattern.parse(text)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    return problems


def env_problems(names: Iterable[str], where: str) -> list[str]:
    problems = []
    for name in names:
        if not _ENV_NAME.fullmatch(name):
            problems.append(f"{where}: env name {name!r} is not a variable name: use letters, digits and '_'")
        elif name.upper().startswith(_RESERVED_ENV_PREFIX):
            problems.append(f"{where}: env name {name!r} is planeteer's own: choose another name")
    return problems


def task_problems(task: Task) -> list[str]:
    """Everything wrong with one task's agent settings (its other fields are the plan loader's)."""
    where = f"task {task.id!r}"
    problems = [
        f"{where}: unknown setting {key!r}: did you mean {_MEANT[_normal(key)]!r}?"
        for key in (task.model_extra or {})
        if _normal(key) in _MEANT
    ]
    problems += scalar_problems(task.model, task.reasoning_effort, task.agent, where)
    problems += pattern_problems(task.allow_tools, f"{where} allowTools")
    problems += pattern_problems(task.deny_tools, f"{where} denyTools")
    problems += env_problems(task.env, f"{where} env")
    return problems


def settings_problems(data: Mapping[str, Any], where: str) -> list[str]:
    """The settings file's keys planeteer reads; the TUI's own keys (and any other) are not planeteer's to judge."""
    problems: list[str] = []
    for key in ("model", "reasoningEffort", "agent"):
        if key in data and not isinstance(data[key], str):
            problems.append(f'{where}: {key} must be a string: write e.g. "{key}": "..."')
    for key in ("allowTools", "denyTools"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            problems.append(f'{where}: {key} must be an array of tool patterns, e.g. ["shell(git push)"]')
        else:
            problems += pattern_problems(value, f"{where} {key}")
    if problems:
        return problems
    return scalar_problems(data.get("model"), data.get("reasoningEffort"), data.get("agent"), where)


def scalar_problems(model: str | None, effort: str | None, agent: str | None, where: str) -> list[str]:
    """Model, reasoning effort and agent, each where it is set."""
    found = [
        model_problem(model, where) if model is not None else None,
        effort_problem(effort, where) if effort is not None else None,
        agent_problem(agent, where) if agent is not None else None,
    ]
    return [problem for problem in found if problem]


def _normal(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")
