"""The environment GitHub's runner gives a step, from one table that cites the runner source setting each name.

Two kinds of step matter to the action: a node step (actions/github-script, which launches planeteer) and a
`run:` step (the action's install steps, and any step of the user's job). The runner builds their
environments in different handlers, so the same job hands them different variables: a `run:` step never
gets the artifact and cache services' credentials. `step_environment` refuses a variable the table does not
list for that kind of step, so a test cannot give planeteer something the real runner would not.

Sources, in actions/runner (read 2026-11, see /tmp/issue8-research.md §1): `Handlers/NodeScriptActionHandler.cs`
(node), `Handlers/ScriptHandler.cs` (`run:`), `GitHubContext.cs` (`_contextEnvAllowlist`, emitted as
`GITHUB_<KEY>` by both handlers' `runtimeContext.GetRuntimeEnvironmentVariables()` loop), `RunnerContext.cs`
(`RUNNER_<KEY>`), `Handlers/Handler.cs` (`INPUT_*`), `Runner.Sdk/ProcessInvoker.cs` (`GITHUB_ACTIONS`, `CI`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

StepKind = Literal["node", "run"]
BOTH: frozenset[StepKind] = frozenset({"node", "run"})
NODE: frozenset[StepKind] = frozenset({"node"})

_NODE_HANDLER = "Handlers/NodeScriptActionHandler.cs"
_ALLOWLIST = "GitHubContext.cs _contextEnvAllowlist, emitted by both handlers' GetRuntimeEnvironmentVariables() loop"
_GITHUB_CONTEXT_KEYS = [
    "action",
    "actor",
    "actor_id",
    "api_url",
    "base_ref",
    "event_name",
    "event_path",
    "graphql_url",
    "head_ref",
    "job",
    "ref",
    "ref_name",
    "ref_protected",
    "ref_type",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "retention_days",
    "run_attempt",
    "run_id",
    "run_number",
    "server_url",
    "sha",
    "triggering_actor",
    "workflow",
    "workflow_ref",
    "workflow_sha",
]
_RUNNER_CONTEXT = "RunnerContext.cs `RUNNER_{key}` for every string key of the runner context"


@dataclass(frozen=True)
class Variable:
    name: str
    steps: frozenset[StepKind]
    source: str
    """The runner code that puts it in the step's environment."""
    when: str = ""
    """The condition under which the runner sets it; empty: always."""


VARIABLES: tuple[Variable, ...] = (
    # The services' credentials: node (and container) steps only; ScriptHandler.cs sets none of these.
    Variable("ACTIONS_RUNTIME_TOKEN", NODE, f"{_NODE_HANDLER}: systemConnection.Authorization...AccessToken"),
    Variable("ACTIONS_RUNTIME_URL", NODE, f"{_NODE_HANDLER}: systemConnection.Url, or PipelinesServiceUrl"),
    Variable(
        "ACTIONS_RESULTS_URL", NODE, f"{_NODE_HANDLER}: systemConnection.Data[ResultsServiceUrl]", "artifact v4 exists"
    ),
    Variable("ACTIONS_CACHE_URL", NODE, f"{_NODE_HANDLER}: systemConnection.Data[CacheServerUrl]", "v1 cache (GHES)"),
    Variable(
        "ACTIONS_CACHE_SERVICE_V2",
        NODE,
        f'{_NODE_HANDLER}: "True" when the job variable actions_uses_cache_service_v2 is true',
        "v2 cache service",
    ),
    Variable(
        "ACTIONS_CACHE_MODE",
        NODE,
        f"{_NODE_HANDLER}: the job variable actions_cache_mode (runner PR #4538; none|read|write|write-only)",
        "the job has a cache mode",
    ),
    # The OIDC pair: in both kinds of step; its token is the same AccessToken as ACTIONS_RUNTIME_TOKEN.
    Variable(
        "ACTIONS_ID_TOKEN_REQUEST_URL", BOTH, "both handlers: systemConnection.Data[GenerateIdTokenUrl]", "id-token"
    ),
    Variable(
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        BOTH,
        "both handlers: the connection's AccessToken, the same value as ACTIONS_RUNTIME_TOKEN",
        "id-token",
    ),
    Variable("GITHUB_ACTIONS", BOTH, 'Runner.Sdk/ProcessInvoker.cs: StartInfo.Environment["GITHUB_ACTIONS"] = "true"'),
    Variable("CI", BOTH, 'Runner.Sdk/ProcessInvoker.cs: "true" unless already set'),
    # GITHUB_*: the allowlist. Values come from the server's job message, except where noted.
    *(Variable(f"GITHUB_{key.upper()}", BOTH, _ALLOWLIST) for key in _GITHUB_CONTEXT_KEYS),
    Variable("GITHUB_WORKSPACE", BOTH, f"{_ALLOWLIST}; JobExtension SetGitHubContext(workspace, ...)"),
    *(
        Variable(f"GITHUB_{key.upper()}", BOTH, f"{_ALLOWLIST}; FileCommandManager.cs InitializeFiles: a new file")
        for key in ("env", "path", "output", "state", "step_summary")
    ),
    Variable(
        "GITHUB_ACTION_PATH",
        BOTH,
        f'{_ALLOWLIST}; Handlers/CompositeActionHandler.cs SetGitHubContext("action_path", ActionDirectory)',
        "a step of a composite action",
    ),
    *(
        Variable(
            f"GITHUB_ACTION_{key.upper()}",
            BOTH,
            f'{_ALLOWLIST}; ActionRunner.cs SetGitHubContext("action_{key}", repoPathReferenceAction...)',
            "the step runs a repository action, or is inside one",
        )
        for key in ("repository", "ref")
    ),
    *(
        Variable(f"RUNNER_{key.upper()}", BOTH, f"{_RUNNER_CONTEXT}; {where}")
        for key, where in (
            ("os", "JobRunner SetRunnerContext(os, VarUtil.OS)"),
            ("arch", "JobRunner SetRunnerContext(arch, VarUtil.OSArchitecture)"),
            ("name", "JobRunner SetRunnerContext(name, AgentName)"),
            ("tool_cache", "JobRunner SetRunnerContext(tool_cache, WellKnownDirectory.Tools)"),
            ("temp", "TempDirectoryManager SetRunnerContext(temp, ...), emptied at job start"),
            ("workspace", "JobExtension SetRunnerContext(workspace, ...)"),
        )
    ),
)
BY_NAME = {variable.name: variable for variable in VARIABLES}
INPUTS_SOURCE = "Handlers/Handler.cs AddInputsToEnvironment: INPUT_{name.Replace(' ', '_').ToUpperInvariant()}"
"""Called by the node and container handlers only: a `run:` step gets no INPUT_* from the runner."""


def input_name(name: str) -> str:
    """The variable an action input becomes in a node step: spaces to `_`, upper case, hyphens kept."""
    return f"INPUT_{name.replace(' ', '_').upper()}"


def step_environment(
    kind: StepKind, runner: Mapping[str, str], inputs: Mapping[str, str] = {}, step_env: Mapping[str, str] = {}
) -> dict[str, str]:
    """What a step of `kind` gets: `runner`'s variables (each one the table lists for that kind), the action's
    `inputs` as INPUT_* (node steps only), and the job's and the step's own `env:` (which the user controls).

    Raises ValueError for a variable the runner does not set for this kind of step.
    """
    foreign = [name for name in runner if name not in BY_NAME or kind not in BY_NAME[name].steps]
    if foreign:
        raise ValueError(f"the runner does not set {', '.join(sorted(foreign))} for a {kind} step")
    if inputs and kind != "node":
        raise ValueError("the runner gives a run: step no INPUT_* variables")
    # The step's env first, then the runner's own variables and inputs over it, as Handler.cs adds them last.
    return {**step_env, **runner, **{input_name(name): value for name, value in inputs.items()}}


_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def evaluate(template: str, context: Mapping[str, str]) -> str:
    """Expand `${{ a.b || c.d }}` in an action.yml value: each operand a context path (`inputs.plan`,
    `github.action_path`, `steps.python.outputs.python-version`) or a quoted string; `||` takes the first
    non-empty. Enough for action.yml; an unknown path is an error rather than a silent empty string."""

    def operand(text: str) -> str:
        if text[:1] in "'\"":
            return text[1:-1]
        if text not in context:
            raise KeyError(f"action.yml uses ${{{{ {text} }}}}, which this simulation does not know")
        return context[text]

    def expand(match: re.Match[str]) -> str:
        values = [operand(part.strip()) for part in match.group(1).split("||")]
        return next((value for value in values if value), values[-1])

    return _EXPRESSION.sub(expand, template)
