"""What the plan keeps of a task's rules: names and short hashes, never values; and how two records differ.

An attempt records the rules its session started with, so a later run can tell the person, before resuming,
that the rules changed since (a pattern added, an MCP server's configuration edited, a skill's folder changed).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from planeteer_action.engine.recovery import RecoveryReport
from planeteer_action.plan.model import Plan, RulesRecord, Task

_HASH_LENGTH = 16
_EMPTY = RulesRecord().model_dump()


def fingerprint(data: bytes) -> str:
    """A short sha256: enough to notice a change, too short to stand in for the content."""
    return hashlib.sha256(data).hexdigest()[:_HASH_LENGTH]


def json_fingerprint(value: Any) -> str:
    return fingerprint(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())


class Recorder(Protocol):
    def record(self, task: Task) -> RulesRecord | None: ...


def changes_since_started(plan: Plan, rules: Recorder, report: RecoveryReport) -> dict[str, list[str]]:
    """For each task a resume would continue, how the rules it would now get differ from its session's."""
    changed: dict[str, list[str]] = {}
    for found in report.unfinished:
        task = plan.task(found.task_id)
        started = task.current_attempt.rules if task.current_attempt else None
        changes = rules_changes(started, rules.record(task)) if found.state == "resumable" else []
        if changes:
            changed[task.id] = changes
    return changed


def is_empty(record: RulesRecord) -> bool:
    return record.model_dump() == _EMPTY


def rules_changes(old: RulesRecord | None, new: RulesRecord | None) -> list[str]:
    """One short phrase per difference, e.g. `model gpt-5 -> gpt-4.1`, `deny +shell(rm)`, `MCP server db changed`."""
    before, after = old or RulesRecord(), new or RulesRecord()
    changes: list[str] = []
    for label, name in (("model", "model"), ("reasoning effort", "reasoning_effort"), ("agent", "agent")):
        was, now = getattr(before, name), getattr(after, name)
        if was != now:
            changes.append(f"{label} {was or 'default'} -> {now or 'default'}")
    for label, was_list, now_list in (
        ("allow", before.allow_tools, after.allow_tools),
        ("deny", before.deny_tools, after.deny_tools),
        ("writable", before.writable_directories, after.writable_directories),
    ):
        changes += [f"{label} +{p}" for p in now_list if p not in was_list]
        changes += [f"{label} -{p}" for p in was_list if p not in now_list]
    changes += _named_changes("MCP server", before.mcp_servers, after.mcp_servers)
    changes += _named_changes("skill", before.skills, after.skills)
    if before.env_names != after.env_names:
        changes.append(f"env {', '.join(before.env_names) or '-'} -> {', '.join(after.env_names) or '-'}")
    elif before.env_hash != after.env_hash:
        changes.append(f"env values changed ({', '.join(after.env_names)})")
    return changes


def _named_changes(label: str, was: dict[str, str], now: dict[str, str]) -> list[str]:
    changes = [f"{label} {name} added" for name in now if name not in was]
    changes += [f"{label} {name} removed" for name in was if name not in now]
    changes += [f"{label} {name} changed" for name in now if name in was and was[name] != now[name]]
    return changes
