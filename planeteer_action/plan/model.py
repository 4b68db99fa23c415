"""The plan file's data model: the Planeteer TUI's JSON format plus what execution records.

Plans are read and written with camelCase keys exactly as the TypeScript Planeteer does. Keys this
model does not know are kept, in their original order, so a plan round-trips unchanged apart from what
execution adds (`sessionId`, `attempts`, `execution`, and the `interrupted` status).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

TaskStatus = Literal["pending", "in_progress", "done", "failed", "interrupted"]
# Why an attempt ended. "lost": its session vanished before it could be resumed; "superseded": the
# person chose to start the task afresh instead of resuming this session.
AttemptOutcome = Literal["running", "done", "failed", "interrupted", "lost", "superseded"]
RecoveryChoice = Literal["resume", "fresh", "cleanup"]
# "worktree": each task in its own git worktree, merged into an integration branch; "shared": one tree.
Isolation = Literal["worktree", "shared"]


def utc_now() -> str:
    """Timestamps in the TUI's own style: `new Date().toISOString()`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class _Model(BaseModel):
    """camelCase on disk, snake_case in code, unknown keys kept in the file's own order."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    _key_order: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_key_order(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        instance = handler(data)
        if isinstance(data, dict):
            fields = cls.model_fields
            instance._key_order = [fields[key].alias or key if key in fields else key for key in data]
        return instance

    def to_json_dict(self, replace: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The on-disk form: the keys the file had or execution set, in the file's order, then new ones.

        `replace` gives ready-made values for some keys (the store passes pre-serialised tasks).
        """
        data: dict[str, Any] = {}
        fields_set = self.model_fields_set
        for name, alias, default in _json_fields(type(self)):
            value = getattr(self, name)
            # Mutated lists (appended attempts) are not "set"; a value that differs from its default is.
            if name in fields_set or value != default:
                data[alias] = replace[alias] if replace and alias in replace else _to_json(value)
        data.update(self.model_extra or {})
        ordered = {key: data[key] for key in self._key_order if key in data}
        ordered.update((key, value) for key, value in data.items() if key not in ordered)
        return ordered


@functools.cache
def _json_fields(model: type[_Model]) -> tuple[tuple[str, str, Any], ...]:
    """(name, alias, default) per field, computed once per class: saves walk every field of every task."""
    return tuple(
        (name, field.alias or name, field.get_default(call_default_factory=True))
        for name, field in model.model_fields.items()
    )


def _to_json(value: Any) -> Any:
    if isinstance(value, _Model):
        return value.to_json_dict()
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    return value


class RulesRecord(_Model):
    """The rules an attempt's session started with, by name and hash, never by value: enough to tell that
    they changed between attempts, nothing a secret could be read from.

    `mcp_servers` maps each MCP server's name to a hash of its configuration before `${VAR}` expansion,
    `skills` each enabled skill to a hash of its folder, `env_hash` covers the task's `env` names and values.
    """

    model: str | None = None
    reasoning_effort: str | None = None
    agent: str | None = None
    allow_tools: list[str] = Field(default_factory=list)
    deny_tools: list[str] = Field(default_factory=list)
    mcp_servers: dict[str, str] = Field(default_factory=dict)
    skills: dict[str, str] = Field(default_factory=dict)
    env_names: list[str] = Field(default_factory=list)
    env_hash: str | None = None
    writable_directories: list[str] = Field(default_factory=list)


class Attempt(_Model):
    """One turn of work on a task in one Copilot session: a first start, a fresh restart, or a resume."""

    number: int
    session_id: str
    reason: str
    started_at: str
    ended_at: str | None = None
    outcome: AttemptOutcome = "running"
    error: str | None = None
    session_deleted: bool = False
    # Worktree isolation: the attempt's work left nothing to commit; or, started over, where its edits are kept.
    no_changes: bool = False
    abandoned_ref: str | None = None
    # What the session was given and allowed (absent when no rule was set).
    rules: RulesRecord | None = None


class Task(_Model):
    id: str
    title: str
    description: str = ""
    acceptance_criteria: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    status: TaskStatus = "pending"
    agent_result: str | None = None
    session_id: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    # Worktree isolation: the integration-branch commit that holds the task's merged work.
    commit: str | None = None
    # The task's own agent settings; the nearest setting wins (the task, then the command line, then
    # `.planeteer/settings.json`); tool patterns add up across those, and a deny wins over an allow.
    model: str | None = None
    reasoning_effort: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    allow_tools: list[str] = Field(default_factory=list)
    deny_tools: list[str] = Field(default_factory=list)
    agent: str | None = None
    # Tool requests its agents made that the rules denied (they never ran), over all its attempts.
    denied_requests: int = 0

    @field_validator("status", mode="before")
    @classmethod
    def _running_means_in_progress(cls, value: Any) -> Any:
        # Older Planeteer builds and the request's own text call the state "running".
        return "in_progress" if value == "running" else value

    @property
    def current_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def next_attempt_number(self) -> int:
        return max((a.number for a in self.attempts), default=0) + 1


class Skill(_Model):
    """A skill as the TUI lists it in the plan: a folder under `.github/skills/`, given to every session if enabled."""

    name: str
    enabled: bool = True


class Recovery(_Model):
    """What a run decided about the work an earlier run left unfinished."""

    at: str
    choice: RecoveryChoice
    resumed: list[str] = Field(default_factory=list)
    restarted: list[str] = Field(default_factory=list)
    deleted_sessions: list[str] = Field(default_factory=list)
    source: str | None = None
    # Per resumed task: how its rules now differ from those its session started with.
    rules_changed: dict[str, list[str]] = Field(default_factory=dict)


class Execution(_Model):
    """Where and how the plan runs: what recovery needs to find and resume its sessions."""

    repository: str | None = None
    branch: str | None = None
    working_directory: str | None = None
    model: str | None = None
    provider_type: str | None = None
    provider_base_url: str | None = None
    started_at: str | None = None
    isolation: Isolation | None = None
    integration_branch: str | None = None
    base_commit: str | None = None
    recoveries: list[Recovery] = Field(default_factory=list)


class Plan(_Model):
    id: str
    name: str
    description: str = ""
    created_at: str | None = None
    updated_at: str | None = None
    tasks: list[Task]
    skills: list[Skill] = Field(default_factory=list)
    execution: Execution | None = None

    def task(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def touch(self) -> None:
        self.updated_at = utc_now()
