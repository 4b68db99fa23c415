"""Copilot session folders on disk: read from one Copilot home into a checkpoint, written into another.

Reading never follows symlinks and tolerates a live session writing meanwhile. Writing goes first into a
staging folder inside the Copilot home; only renames then replace the live folders, so a failure never
leaves a half-written session, and a restore can stage the sessions before it changes anything else.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
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


def read_session_folder(folder: Path, max_bytes: int) -> Iterator[tuple[str, bytes]]:
    """The regular files under a session folder, never following symlinks; a live session may be writing."""
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
            if not is_safe_path(relative):
                continue
            data = _read_regular_file(path, max_bytes)
            if data is not None:
                yield relative, data


def _read_regular_file(path: Path, max_bytes: int) -> bytes | None:
    """The file's bytes, read once; None if it vanished or is not a regular file."""
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
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise CheckpointTooLarge(
            f"session file {path} is over the per-file limit of {max_bytes} bytes: it cannot be saved"
        )
    return data


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
