"""Copilot session folders on disk: read from one Copilot home into checkpoint pieces, written into another.

Reading never follows symlinks and tolerates a live session writing meanwhile. It reads only what changed
since the last checkpoint: a file whose size and time are as they were is not read at all, and a log that
only grew (`*.jsonl`, which the Copilot CLI appends to) is read from where the last checkpoint stopped.
Writing goes first into a staging folder inside the Copilot home; only renames then replace the live
folders, so a failure never leaves a half-written session, and a restore can stage the sessions before it
changes anything else.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from planeteer_action.checkpoints.errors import (
    CheckpointError,
    CheckpointInvalid,
    CheckpointRestoreFailed,
    CheckpointTooLarge,
)
from planeteer_action.checkpoints.zip_io import is_safe_path

_VANISHED = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO}  # gone, or swapped for a link or socket


APPEND_ONLY_SUFFIX = ".jsonl"
_TAIL = 64  # the last bytes that travelled, which an append leaves in place


@dataclass(frozen=True)
class SentFile:
    """What of a session file has travelled: its size and time when read, and its last bytes."""

    size: int
    mtime_ns: int
    tail: bytes


def changed_session_files(
    folder: Path, sent: Mapping[str, SentFile], max_bytes: int
) -> Iterator[tuple[str, int, bytes, SentFile]]:
    """(relative path, offset, bytes, what has travelled then) of every regular file under a session folder that
    changed since `sent`: a log's appended range, any other file whole. Never follows symlinks."""
    try:
        if not stat.S_ISDIR(folder.lstat().st_mode):
            return
    except FileNotFoundError:
        return
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            relative = path.relative_to(folder).as_posix()
            if is_safe_path(relative):
                change = _change(path, sent.get(relative), relative.endswith(APPEND_ONLY_SUFFIX), max_bytes)
                if change is not None:
                    yield relative, *change


def _change(
    path: Path, before: SentFile | None, append_only: bool, max_bytes: int
) -> tuple[int, bytes, SentFile] | None:
    """(offset, bytes, what has travelled then) for one file, or None when it is unchanged or gone."""
    start = before.size - len(before.tail) if before is not None and append_only else 0
    read = _read_regular_file(path, max_bytes, before, start)
    if read is None:
        return None
    data, mtime_ns = read
    if before is not None and start and data.startswith(before.tail):
        appended = data[len(before.tail) :]
        size = before.size + len(appended)
        return before.size, appended, SentFile(size, mtime_ns, (before.tail + appended)[-_TAIL:])
    if start:  # not an append after all: the whole file travels again
        read = _read_regular_file(path, max_bytes, None, 0)
        if read is None:
            return None
        data, mtime_ns = read
    return 0, data, SentFile(len(data), mtime_ns, data[-_TAIL:])


def _read_regular_file(path: Path, max_bytes: int, unchanged: SentFile | None, start: int) -> tuple[bytes, int] | None:
    """The file's bytes from `start`, read once, and its time; None if it vanished, is not a regular file, or
    has the size and time `unchanged` gives."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in _VANISHED:
            return None
        raise CheckpointError(f"cannot read session file {path}: {exc.strerror}: check its permissions") from None
    with os.fdopen(fd, "rb") as file:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            return None
        if unchanged is not None and (status.st_size, status.st_mtime_ns) == (unchanged.size, unchanged.mtime_ns):
            return None
        file.seek(start)
        data = file.read(max_bytes + 1 - start)
    if start + len(data) > max_bytes:
        raise CheckpointTooLarge(
            f"session file {path} is over the per-file limit of {max_bytes} bytes: it cannot be saved"
        )
    return data, status.st_mtime_ns


def check_session_tree(session_id: str, paths: Iterable[str]) -> None:
    """Refuse a session whose files could not all be written: one path both a file and another's folder."""
    files = set(paths)
    for path in sorted(files):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in files:
                raise CheckpointInvalid(
                    f"its session {session_id} holds {folder[:120]!r} both as a file and as a folder: refused"
                )


class StagedSessions:
    """Session folders written in full inside the Copilot home, waiting to replace the live ones.

    Use as a context manager: whatever was not moved into place is removed on leaving it.
    """

    def __init__(self, copilot_home: Path, session_files: Mapping[str, Mapping[str, bytes]]) -> None:
        home = copilot_home.resolve()
        self._state = home / "session-state"
        self.session_ids = sorted(session_files)
        try:
            self._state.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self._state.resolve() != self._state:
                raise CheckpointRestoreFailed(
                    f"{self._state} is a symlink: point the Copilot home at a real folder and re-run"
                )
            self._staging = Path(tempfile.mkdtemp(prefix=".planeteer-restore-", dir=home))
            try:
                for session_id, files in session_files.items():
                    _write_folder(self._staging / session_id, files)
            except BaseException:
                self.discard()
                raise
        except OSError as exc:
            raise self._failure(exc) from None

    def __enter__(self) -> StagedSessions:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.discard()

    def move_into_place(self) -> list[str]:
        """Replace each live session folder of the same id by renames only; return the ids."""
        try:
            for session_id in self.session_ids:
                new, old = self._staging / session_id, self._staging / f"{session_id}.old"
                _rename_into_place(new, self._state / session_id, old)
        except OSError as exc:
            raise self._failure(exc) from None
        return self.session_ids

    def discard(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)

    def _failure(self, exc: OSError) -> CheckpointRestoreFailed:
        return CheckpointRestoreFailed(
            f"cannot restore sessions into {self._state}: {exc.strerror or exc}: make the Copilot home writable"
        )


def _write_folder(folder: Path, files: Mapping[str, bytes]) -> None:
    folder.mkdir(mode=0o700)
    root = folder.resolve()
    for relative, data in files.items():
        target = folder / relative
        if not target.resolve().is_relative_to(root):
            raise CheckpointRestoreFailed(f"session file {relative!r} would land outside its folder: refused")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)


def _rename_into_place(new: Path, target: Path, old: Path) -> None:
    """Move `new` to `target`; whatever was at `target` goes to `old` (and back if the move fails)."""
    replaced = os.path.lexists(target)
    if replaced:
        os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        if replaced:
            os.rename(old, target)
        raise
