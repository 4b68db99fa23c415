"""The plan on disk: strict loading, atomic saves and the Markdown view beside it.

A save writes a temporary file in the same folder, fsyncs it and renames it over the plan, so a kill at any
instant leaves either the previous or the next plan on disk, never a torn one. The JSON is formatted the
way the TypeScript Planeteer writes it (`JSON.stringify(plan, null, 2)`), so an unchanged plan is saved
byte for byte as it was read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Collection
from concurrent.futures import Future
from pathlib import Path

import orjson
from pydantic import ValidationError

from planeteer_action.errors import PlanInvalid, PlanSaveFailed
from planeteer_action.plan.graph import check_graph
from planeteer_action.plan.jsontext import dumps, parse_json
from planeteer_action.plan.lock import real_path
from planeteer_action.plan.markdown import TREE_END, markdown_head, task_section, tree_layout, tree_line
from planeteer_action.plan.model import Plan, Task
from planeteer_action.plan.problems import describe_validation_error, kind_of


def load_plan(path: Path) -> Plan:
    """Read and check a plan; every problem is one PlanInvalid line naming the place and the fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanInvalid(f"{path}: no such plan file: check the path") from None
    except IsADirectoryError:
        raise PlanInvalid(f"{path}: is a folder, not a plan file: pass the plan's .json file") from None
    except UnicodeDecodeError:
        raise PlanInvalid(f"{path}: not UTF-8 text: save the plan as UTF-8 JSON") from None
    except OSError as exc:
        raise PlanInvalid(f"{path}: cannot read: {exc.strerror}") from None
    data = parse_json(text, str(path))
    if not isinstance(data, dict):
        raise PlanInvalid(f"{path}: a plan is a JSON object with id, name and tasks, not {kind_of(data)}")
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanInvalid(f"{path}: {describe_validation_error(exc, data)}") from None
    try:
        check_graph(plan)
    except PlanInvalid as exc:
        raise PlanInvalid(f"{path}: {exc}") from None
    return plan


def task_json(task: Task) -> bytes:
    """One task as it appears inside the plan's `tasks` array (indented for that depth)."""
    return dumps(task.to_json_dict()).replace(b"\n", b"\n    ")


def plan_json(plan: Plan, task_pieces: list[bytes] | None = None) -> bytes:
    """The plan as `JSON.stringify(plan, null, 2)` writes it; `task_pieces` are `task_json` of its tasks."""
    pieces = task_pieces if task_pieces is not None else [task_json(task) for task in plan.tasks]
    return dumps(plan.to_json_dict(replace={"tasks": [orjson.Fragment(piece) for piece in pieces]}))


def save_plan(plan: Plan, path: Path) -> None:
    """Atomically replace the plan file, then its Markdown view (everything serialised afresh)."""
    PlanWriter(path).save(plan)


class PlanWriter:
    """Saves one plan again and again, serialising again only the tasks named as changed.

    The executor changes one task per save, so saving a 2,000-task plan costs one task's serialisation
    plus the writes, not the whole plan's. `changed=None` serialises everything. The Markdown view is
    rewritten at most every `markdown_interval` seconds (0: on every save); `finish` brings it up to date.
    A plan path that is a symbolic link is resolved once: saves replace the file it points to.
    """

    def __init__(self, path: Path, markdown_interval: float = 0.0) -> None:
        self.path = real_path(path)
        self._markdown_interval = markdown_interval
        self._markdown_due = 0.0
        self._markdown_stale = False
        # Per task: its JSON piece, its line in the Markdown tree, its Markdown section.
        self._pieces: dict[str, tuple[bytes, bytes, bytes]] = {}
        self._layout: dict[str, tuple[str, str, str]] = {}
        self._tree_order: list[str] = []

    def save(self, plan: Plan, changed: Collection[str] | None = None) -> None:
        self.write(self.render(plan, changed))

    def render(self, plan: Plan, changed: Collection[str] | None = None) -> Rendered:
        """The plan's JSON (and, when due, its Markdown view) as they are now: a snapshot."""
        if changed is None or not self._layout:
            self._pieces.clear()
            layout = tree_layout(plan)
            self._layout = {entry[0]: entry for entry in layout}
            self._tree_order = [entry[0] for entry in layout]
        else:
            for task_id in changed:
                self._pieces.pop(task_id, None)
        for task in plan.tasks:
            if task.id not in self._pieces:
                self._pieces[task.id] = (
                    task_json(task),
                    tree_line(self._layout[task.id], task.status).encode("utf-8"),
                    task_section(task).encode("utf-8"),
                )
        plan_bytes = plan_json(plan, [self._pieces[task.id][0] for task in plan.tasks])
        now = time.monotonic()
        if now < self._markdown_due:
            self._markdown_stale = True
            return plan_bytes, None
        self._markdown_due = now + self._markdown_interval
        self._markdown_stale = False
        return plan_bytes, self._markdown(plan)

    def finish(self, plan: Plan) -> None:
        """Write the Markdown view if a save skipped it (the plan is already on disk)."""
        if self._markdown_stale:
            self._markdown_stale = False
            write_atomic(markdown_path(self.path), self._markdown(plan), durable=False)

    def write(self, rendered: Rendered) -> None:
        """Raises PlanSaveFailed (the file on disk is then the previous, whole plan)."""
        plan_bytes, markdown = rendered
        try:
            write_atomic(self.path, plan_bytes)
            if markdown is not None:
                # The view is derived from the plan and rewritten often: atomic, but not worth an fsync.
                write_atomic(markdown_path(self.path), markdown, durable=False)
        except OSError as exc:
            raise PlanSaveFailed(
                f"cannot save {self.path}: {exc.strerror or exc}: make the file and its folder writable, "
                "then run again to resume"
            ) from None

    def _markdown(self, plan: Plan) -> bytes:
        pieces = self._pieces
        chunks = [
            markdown_head(plan).encode("utf-8"),
            *(pieces[task_id][1] for task_id in self._tree_order),
            TREE_END.encode("utf-8"),
            *(pieces[task.id][2] for task in plan.tasks),
        ]
        # The TUI's view ends with a single newline; the last section (or the tree's end) has two.
        return b"".join(chunks)[:-1]


# A rendered save: the plan's JSON, and its Markdown view unless that was not due.
Rendered = tuple[bytes, bytes | None]


class BackgroundPlanWriter:
    """A PlanWriter whose disk writes (and fsyncs) happen on one worker thread, with group commit.

    Serialising stays on the caller's thread, so each save is a consistent snapshot of the whole plan.
    When several saves are waiting, only the newest is written (it holds every earlier change) and all
    of them complete together. Awaiting `save` still means the plan is on disk, which is what
    write-ahead needs, while the event loop runs the other tasks meanwhile. The Markdown view is
    refreshed at most once a second during a run: in ext4's default mode every fsync of the plan would
    otherwise also flush the whole view written just before it.
    """

    MARKDOWN_INTERVAL = 1.0
    # How long a forced exit waits for its save: a stuck disk must not keep the process alive.
    FORCED_SAVE_SECONDS = 0.5

    def __init__(self, path: Path) -> None:
        self._writer = PlanWriter(path, markdown_interval=self.MARKDOWN_INTERVAL)
        self._pending: list[tuple[Rendered, Future[None]]] = []
        self._last_plan: Plan | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="plan-writer", daemon=True)
        self._thread.start()

    async def save(self, plan: Plan, changed: Collection[str] | None = None) -> None:
        """Returns once the plan is on disk; cancelling the wait leaves the write to go on regardless."""
        self._last_plan = plan
        await asyncio.wrap_future(self._submit(self._writer.render(plan, changed)))

    def save_blocking(self, plan: Plan, changed: Collection[str] | None = None) -> None:
        """For a forced exit: queued behind any write in flight (so an older one cannot land after it),
        and waited for `FORCED_SAVE_SECONDS` at most; PlanSaveFailed if it is not on disk by then."""
        try:
            self._submit(self._writer.render(plan, changed)).result(timeout=self.FORCED_SAVE_SECONDS)
        except TimeoutError:
            raise PlanSaveFailed(
                f"could not save {self._writer.path} within {self.FORCED_SAVE_SECONDS:g} s before exiting: "
                "it holds the previous state; run again to resume"
            ) from None

    def close(self) -> None:
        """Finish the writes in flight, then bring the Markdown view up to date."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        if self._last_plan is not None:
            with contextlib.suppress(OSError):  # the view is a convenience; the plan itself is saved
                self._writer.finish(self._last_plan)

    def _submit(self, rendered: Rendered) -> Future[None]:
        done: Future[None] = Future()
        with self._cond:
            self._pending.append((rendered, done))
            self._cond.notify()
        return done

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            # A save whose waiter was cancelled is still written (the newest snapshot holds every change)
            # but gets no result; this is the race-free way to tell, and it keeps the thread alive.
            waiting = [done for _, done in batch if done.set_running_or_notify_cancel()]
            # A Markdown view skipped in the newest snapshot may be in an older one.
            plan_bytes = batch[-1][0][0]
            markdown = next((md for (_, md), _ in reversed(batch) if md is not None), None)
            try:
                self._writer.write((plan_bytes, markdown))
            except Exception as exc:  # whatever it is belongs to the savers; the thread must live on
                for done in waiting:
                    done.set_exception(exc)
            else:
                for done in waiting:
                    done.set_result(None)


def markdown_path(path: Path) -> Path:
    return path.with_suffix(".md")


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Temporary file beside the target, fsync, rename, fsync the folder; keeps the target's mode.

    The rename alone means a killed process leaves the old or the new file; the fsyncs (`durable`) make
    that hold across a power loss too.
    """
    folder = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a folder made read-only meanwhile: report the first error
            os.unlink(tmp)
        raise
    if not durable:
        return
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
