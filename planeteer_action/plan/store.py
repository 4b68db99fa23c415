"""The plan on disk: strict loading, atomic saves, the Markdown view beside it, and the owner's lock.

A save writes a temporary file in the same folder, fsyncs it and renames it over the plan, so a kill at any
instant leaves either the previous or the next plan on disk, never a torn one. The JSON is formatted the
way the TypeScript Planeteer writes it (`JSON.stringify(plan, null, 2)`), so an unchanged plan is saved
byte for byte as it was read.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Collection, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import orjson
from pydantic import ValidationError

from planeteer_action.errors import PlanInvalid, PlanLocked, PlanSaveFailed, PlanUnwritable
from planeteer_action.plan.graph import check_graph
from planeteer_action.plan.jsontext import dumps, parse_json
from planeteer_action.plan.markdown import TREE_END, markdown_head, task_section, tree_layout, tree_line
from planeteer_action.plan.model import Plan, Task, utc_now
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


def real_path(path: Path) -> Path:
    """The file a plan path names, through symbolic links: saves replace that file (atomically, in its
    own folder) and the lock sits beside it, so every path to one plan shares one lock."""
    return Path(os.path.realpath(path))


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


@dataclass(frozen=True)
class LockOwner:
    pid: int
    host: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} (since {self.since})"


class PlanLock:
    """One executor per plan: an flock on `<plan>.lock`, which the kernel releases when its owner dies.

    The file's content names the owner, so a refused run can say who holds it, and a run that finds the
    file left by a dead owner can say it took over. The lock is taken only where the plan can be saved,
    and never through a link: anything else is refused with one line before anything changes.
    """

    def __init__(self, plan_path: Path) -> None:
        self.plan_path = real_path(plan_path)
        self.path = self.plan_path.with_name(self.plan_path.name + ".lock")
        self._fd: int | None = None
        self.taken_over: LockOwner | None = None

    def acquire(self) -> None:
        self._check_writable()
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                who = owner.describe() if owner else "another process"
                raise PlanLocked(
                    f"{self.plan_path} is being run by {who}: wait for it to finish "
                    "or stop it first; only one planeteer may run a plan at a time"
                ) from None
            # The previous owner may have unlinked the file between our open and flock: retry on a fresh one.
            try:
                same = os.fstat(fd).st_ino == os.lstat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.taken_over = _read_owner(fd)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd

    def _check_writable(self) -> None:
        """The folder and the plan file must take a save (the kernel's answer: immutable counts, for root too)."""
        for target, mode in ((self.plan_path.parent, os.W_OK | os.X_OK), (self.plan_path, os.W_OK)):
            if target.exists() and not os.access(target, mode):
                raise PlanUnwritable(
                    f"{target} is not writable (permissions, a read-only file system or the immutable "
                    "attribute), so the plan could not be saved: make it writable, then try again"
                )

    def _open(self) -> int:
        """Create the lock file (O_EXCL: then it is ours), or open the one a dead owner left; never a link."""
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
        while True:
            try:
                try:
                    return os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    fd = os.open(self.path, flags)
            except FileNotFoundError:
                continue  # its owner removed it between our two opens
            except OSError as exc:
                raise PlanUnwritable(_lock_problem(self.path, exc)) from None
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                return fd
            os.close(fd)
            raise PlanUnwritable(
                f"{self.path} is not a lock file planeteer made (it is linked elsewhere or not a regular "
                "file), so planeteer will not write into it: delete it, then try again"
            )

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):  # a lock file left behind is taken over by the next run
            os.unlink(self.path)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @contextlib.contextmanager
    def held(self) -> Iterator[PlanLock]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()


def _lock_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return (
            f"{path} is a symbolic link, so planeteer will not write its lock through it: "
            "delete the link, then try again"
        )
    return f"cannot create the lock {path}: {exc.strerror}: make the plan's folder writable, then try again"


def _read_owner(fd: int) -> LockOwner | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"null")
        return LockOwner(pid=int(data["pid"]), host=str(data["host"]), since=str(data["since"]))
    except (ValueError, TypeError, KeyError):
        return None
