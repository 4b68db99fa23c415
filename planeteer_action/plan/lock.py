"""The owner's lock of a plan: one executor per plan, and never a write through a link.

Both the lock and every save go to the real file a plan path names (through symbolic links), so every path
to one plan shares one lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from planeteer_action.errors import PlanLocked, PlanUnwritable
from planeteer_action.plan.model import utc_now


def real_path(path: Path) -> Path:
    """The file a plan path names, through symbolic links: saves replace that file (atomically, in its
    own folder) and the lock sits beside it, so every path to one plan shares one lock."""
    return Path(os.path.realpath(path))


def lock_path(path: Path) -> Path:
    real = real_path(path)
    return real.with_name(real.name + ".lock")


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
        self.path = lock_path(self.plan_path)
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
