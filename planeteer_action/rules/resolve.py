"""Each task's rules, from every source: the task itself, the command line (or the action's inputs), the
`.planeteer/settings.json` file, the MCP configuration and the plan's skills.

The nearest setting wins for model, reasoning effort and agent (the task, then the command line, then the
settings file); tool patterns add up across the three, and the runtime lets a deny win over an allow. MCP
servers and enabled skills go to every session. Everything is checked before anything runs; the problems
are one line each.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from planeteer_action.engine.rules import SessionRules, ToolPattern
from planeteer_action.errors import ConfigError
from planeteer_action.plan.model import Plan, RulesRecord, Task
from planeteer_action.rules.checks import pattern_problems, scalar_problems, task_problems
from planeteer_action.rules.mcp import McpServers, expand, parse_mcp_config, read_mcp_config
from planeteer_action.rules.record import is_empty, json_fingerprint
from planeteer_action.rules.settings_file import RuleLayer, read_settings_file
from planeteer_action.rules.skills import find_skills, folder_fingerprint, skill_roots


class RulesInvalid(ConfigError):
    """One or more agent settings are wrong. The message is the first; `problems` holds every one."""

    def __init__(self, problems: Sequence[str]) -> None:
        more = f" (and {len(problems) - 1} more: `planeteer validate` lists them)" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)
        self.problems = list(problems)


@dataclass(frozen=True)
class RuleOptions:
    """The command line's part (the action's inputs, in a workflow): applies to every task."""

    layer: RuleLayer = field(default_factory=RuleLayer)
    mcp_config: Path | None = None
    # The action's `mcp-config` given inline rather than as a file.
    mcp_config_json: str | None = field(default=None, repr=False)
    skills_dirs: tuple[Path, ...] = ()
    # Folders the agents may write to besides their task's working directory (`--add-dir`).
    writable_dirs: tuple[Path, ...] = ()
    # How a problem with them is introduced: they are the command line's, or the action's inputs.
    source: str = "command line"


@dataclass(frozen=True)
class PlanRules:
    """The run-wide sources, resolved once: `session_rules` gives a task its rules, `record` what the plan keeps."""

    settings: RuleLayer = field(default_factory=RuleLayer)
    options: RuleLayer = field(default_factory=RuleLayer)
    mcp: McpServers = field(default_factory=McpServers)
    skills: Mapping[str, Path] = field(default_factory=dict)
    skill_hashes: Mapping[str, str] = field(default_factory=dict)
    writable_dirs: tuple[Path, ...] = ()

    def session_rules(self, task: Task) -> SessionRules:
        return SessionRules(
            model=task.model or self.options.model or self.settings.model,
            reasoning_effort=task.reasoning_effort or self.options.reasoning_effort or self.settings.reasoning_effort,
            allow_tools=tuple(ToolPattern.parse(p) for p in self._patterns("allow_tools", task.allow_tools)),
            deny_tools=tuple(ToolPattern.parse(p) for p in self._patterns("deny_tools", task.deny_tools)),
            mcp_servers=self.mcp.servers,
            skill_directories=tuple(self.skills.values()),
            agent=task.agent or self.options.agent or self.settings.agent,
            env=dict(task.env),
            writable_directories=self.writable_dirs,
        )

    def record(self, task: Task) -> RulesRecord | None:
        """What the plan keeps of the task's rules (names and hashes); None when no rule is set at all."""
        rules = self.session_rules(task)
        record = RulesRecord(
            model=rules.model,
            reasoning_effort=rules.reasoning_effort,
            agent=rules.agent,
            allow_tools=[str(p) for p in rules.allow_tools],
            deny_tools=[str(p) for p in rules.deny_tools],
            mcp_servers=dict(self.mcp.hashes),
            skills=dict(self.skill_hashes),
            env_names=sorted(task.env),
            env_hash=json_fingerprint(task.env) if task.env else None,
            writable_directories=[str(path) for path in rules.writable_directories],
        )
        return None if is_empty(record) else record

    def _patterns(self, name: str, own: Sequence[str]) -> list[str]:
        merged = [*getattr(self.settings, name), *getattr(self.options, name), *own]
        return list(dict.fromkeys(str(ToolPattern.parse(p)) for p in merged))


def rule_problems(plan: Plan, working_directory: Path, options: RuleOptions) -> list[str]:
    """Every problem with the plan's agent settings and the run's, one line each; nothing is expanded."""
    _, problems = read_settings_file(working_directory)
    problems += layer_problems(options.layer, options.source)
    for task in plan.tasks:
        problems += task_problems(task)
    problems += find_skills(plan, skill_roots(working_directory, options.skills_dirs))[1]
    try:
        mcp_servers(options)
    except ConfigError as exc:
        problems.append(str(exc))
    return problems


def load_rules(
    plan: Plan, working_directory: Path, options: RuleOptions, environ: Mapping[str, str] | None = None
) -> PlanRules:
    """The run's rules, every source checked; `${VAR}` in the MCP configuration taken from `environ`."""
    problems = rule_problems(plan, working_directory, options)
    if problems:
        raise RulesInvalid(problems)
    settings, _ = read_settings_file(working_directory)
    servers = mcp_servers(options)
    where = f"MCP config {options.mcp_config}" if options.mcp_config else "input `mcp-config`"
    mcp = expand(servers, os.environ if environ is None else environ, where)
    skills, _ = find_skills(plan, skill_roots(working_directory, options.skills_dirs))
    hashes = {name: folder_fingerprint(folder) for name, folder in skills.items()}
    return PlanRules(settings, options.layer, mcp, skills, hashes, options.writable_dirs)


def layer_problems(layer: RuleLayer, where: str) -> list[str]:
    problems = scalar_problems(layer.model, layer.reasoning_effort, layer.agent, where)
    problems += pattern_problems(layer.allow_tools, f"{where} allowed tools")
    problems += pattern_problems(layer.deny_tools, f"{where} denied tools")
    return problems


def mcp_servers(options: RuleOptions) -> dict[str, dict[str, object]]:
    """The MCP configuration's servers, checked, not expanded (none without a configuration)."""
    if options.mcp_config is not None:
        return read_mcp_config(options.mcp_config)
    if options.mcp_config_json is not None:
        return parse_mcp_config(options.mcp_config_json, "input `mcp-config`")
    return {}
