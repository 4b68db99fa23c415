"""What the offline model reads from a chat-completions request: the task it is for, where the current turn
starts, and what the CLI gave the model besides the conversation (for tests to assert on)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from planeteer_action.engine.prompts import TASK_MARKER

_TASK_LINE = re.compile(r"^[ \t]*" + re.escape(TASK_MARKER) + r"[ \t]*(\S.*?)[ \t]*$", re.MULTILINE)
_AVAILABLE_SKILLS = re.compile(r"<available_skills>(.*?)</available_skills>", re.DOTALL)
_SKILL_NAME = re.compile(r"<skill>\s*<name>(.*?)</name>", re.DOTALL)
_AGENT_INSTRUCTIONS = re.compile(r"<agent_instructions>(.*?)</agent_instructions>", re.DOTALL)


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def find_task_id(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The task id from the most recent user message that names one."""
    for message in reversed(messages):
        if message.get("role") == "user":
            match = _TASK_LINE.search(message_text(message))
            if match:
                return match.group(1)
    return None


def current_turn(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The messages after the last user message: what the agent has done so far in this turn."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    return list(messages[last_user + 1 :])


def session_context(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the CLI gave the model besides the conversation: the tools' names, and from the system prompt the
    skills it lists and the selected custom agent's instructions."""
    system = "".join(message_text(m) for m in body.get("messages") or [] if m.get("role") == "system")
    skills = _AVAILABLE_SKILLS.search(system)
    agent = _AGENT_INSTRUCTIONS.search(system)
    return {
        "tools": [tool.get("function", {}).get("name") for tool in body.get("tools") or []],
        "skills": _SKILL_NAME.findall(skills.group(1)) if skills else [],
        "agent_instructions": agent.group(1).strip() if agent else None,
    }


def log_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A compact copy of one request message for the log; the long system prompt is left out."""
    entry: dict[str, Any] = {"role": message.get("role")}
    if message.get("role") != "system":
        entry["content"] = message_text(message)
    if message.get("tool_calls"):
        entry["tool_calls"] = [
            {"id": call.get("id"), "name": call.get("function", {}).get("name")} for call in message["tool_calls"]
        ]
    if message.get("tool_call_id"):
        entry["tool_call_id"] = message["tool_call_id"]
    return entry
