"""The chaos plan's model: the offline model server, answering each turn from the conversation alone.

The offline model's per-task scripts are consumed request by request, so after an interruption they would
answer a resumed turn with whatever step came next, not with what the turn needs. This model instead looks
at the turn it is asked about, as a real model would, so every interruption is recovered on its merits:

* the conversation never held the task's full prompt (only a continuation, which carries no description):
  it says there is nothing it was asked to do and ends the turn, so a task resumed without its prompt ends
  `done` without its note, and the chaos run counts it;
* otherwise a fresh turn first runs the task's `sleep` (if it has one) in a real bash call, then writes the
  task's note (`planeteer-notes/<slug>.md`) in another, then ends the turn with a one-line summary.

Every request is recorded with the epoch (see `bench.chaos.workload`) it was made in and the wall time.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from planeteer_action.copilot.offline_model import NOTES_DIR, OfflineModelServer, _Answer, note_path
from planeteer_action.copilot.offline_requests import current_turn, find_task_id, message_text
from planeteer_action.engine.prompts import TASK_MARKER
from planeteer_action.plan.model import Task


@dataclass(frozen=True)
class ModelRequest:
    epoch: int
    task_id: str | None
    at: float
    """Wall time (time.time()) when the answer was decided."""
    full_prompt: bool
    """Whether the conversation held the task's full prompt (description, plan context, dependency results)."""


def note_text(task: Task) -> str:
    """What the note of `task` holds: the proof that its full prompt reached the model."""
    return f"# {task.id}\n\n{task.description}\n"


class ChaosModel(OfflineModelServer):
    """An `OfflineModelServer` whose answers depend only on the conversation (see the module docstring)."""

    def __init__(self, tasks: Sequence[Task], sleeps: Mapping[str, float]) -> None:
        super().__init__()
        self._tasks = {task.id: task for task in tasks}
        self._sleeps = dict(sleeps)
        self._log_lock = threading.Lock()
        self._log: list[ModelRequest] = []
        self.epoch = 0

    @property
    def log(self) -> list[ModelRequest]:
        with self._log_lock:
            return list(self._log)

    def answer(self, body: Mapping[str, Any]) -> _Answer | None:
        messages: Sequence[Mapping[str, Any]] = body.get("messages") or []
        task_id = find_task_id(messages)
        task = self._tasks.get(task_id or "")
        users = [message_text(m) for m in messages if m.get("role") == "user"]
        full_prompt = task is not None and any(_told(message, task) for message in users)
        answer = self._decide(task, full_prompt, current_turn(messages))
        with self._log_lock:
            self._log.append(ModelRequest(self.epoch, task_id, time.time(), full_prompt))
        return answer

    def _decide(self, task: Task | None, full_prompt: bool, turn: Sequence[Mapping[str, Any]]) -> _Answer:
        if task is None or not full_prompt:
            return _Answer.text("I was not told what this task is, so there is nothing for me to do.")
        steps_done = sum(m.get("role") == "assistant" for m in turn)
        sleep = self._sleeps.get(task.id, 0.0)
        plan = ([f"sleep {sleep:g}"] if sleep else []) + [_note_command(task)]
        if steps_done < len(plan):
            command = plan[steps_done]
            return _Answer.tool("bash", {"command": command, "description": f"Work on {task.id}"})
        return _Answer.text(f"Completed {task.id}: wrote {note_path(task.id)}")


def _told(message: str, task: Task) -> bool:
    """Whether a user message gave the model the task itself: its id line and its description (which a
    continuation prompt leaves out). The CLI puts its own lines (the date) before planeteer's prompt."""
    return f"\n{TASK_MARKER} {task.id}\n" in message and task.description in message


def _note_command(task: Task) -> str:
    path = shlex.quote(note_path(task.id))
    return f"mkdir -p {NOTES_DIR} && printf '%s' {shlex.quote(note_text(task))} > {path}"
