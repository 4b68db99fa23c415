"""Checkpoints: one zip that lets a re-run on a fresh machine carry on where the last attempt stopped.

A checkpoint holds the plan JSON, the Copilot `session-state/<id>/` folders of the plan's sessions, the
working tree's changes as a patch, and a manifest with the sha256 of every member. It travels as a workflow
artifact, so `open_checkpoint` treats it as untrusted: names, types, sizes, hashes and the plan id are
checked before anything is written, and `Checkpoint.restore_sessions` writes only inside the Copilot home.

Session transcripts are sensitive. With a `state-key` secret the inner zip is sealed with AES-256-GCM under
a key derived by scrypt from the secret and a random salt; the artifact then holds only `checkpoint.sealed`
(magic and version, salt, nonce, ciphertext) and `manifest-public.json` (plan fingerprint, run, attempt,
sequence), which is bound to the ciphertext as associated data so it cannot be altered either.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pydantic import ValidationError

from planeteer_action.checkpoints.workspace import path_outside_checkout
from planeteer_action.engine.session_ids import belongs_to_plan, is_planeteer_session, plan_fingerprint
from planeteer_action.errors import PlaneteerError
from planeteer_action.plan.model import Plan

FORMAT = 1
MANIFEST = "manifest.json"
PLAN = "plan.json"
PATCH = "workspace.patch"
SESSIONS = "sessions"
SEALED = "checkpoint.sealed"
PUBLIC_MANIFEST = "manifest-public.json"

_MAGIC = b"PLNTSEAL\x01"  # the last byte is the sealed format's version
_SALT_SIZE = 16
_NONCE_SIZE = 12
_HEADER_SIZE = len(_MAGIC) + _SALT_SIZE + _NONCE_SIZE
# Fixed per sealed version, so a reader never takes cost parameters from untrusted input.
_SCRYPT = {"length": 32, "n": 2**15, "r": 8, "p": 1}
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MIB = 1024 * 1024
_VANISHED = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO}  # gone, or swapped for a link or socket


@dataclass(frozen=True)
class Limits:
    """Bounds on what `open_checkpoint` reads, so a hostile or broken artifact cannot exhaust the runner."""

    max_archive_bytes: int = 300 * _MIB
    max_members: int = 10_000
    max_member_bytes: int = 64 * _MIB
    max_total_bytes: int = 256 * _MIB


DEFAULT_LIMITS = Limits()


class CheckpointError(PlaneteerError):
    """A checkpoint cannot be saved or used; a run then falls back to the repository's plan file."""


class CheckpointInvalid(CheckpointError):
    """The checkpoint is damaged, altered, unsafe to unpack, or not a planeteer checkpoint."""


class CheckpointKeyMismatch(CheckpointError):
    """The state-key does not fit the checkpoint: missing, wrong, or given for a plain checkpoint."""


class CheckpointTooLarge(CheckpointError):
    """The checkpoint or one of its files exceeds a limit."""


class CheckpointOfOtherPlan(CheckpointError):
    """The checkpoint belongs to another plan."""


class CheckpointRestoreFailed(CheckpointError):
    """The session folders could not be written into the Copilot home."""


@dataclass(frozen=True)
class CheckpointMeta:
    """Where a checkpoint comes from: which plan, which workflow run and attempt, and which commit."""

    plan_id: str
    run_id: str
    attempt: int
    sequence: int
    base_commit: str | None
    created_at: str
    plan_path: str

    @classmethod
    def from_json(cls, value: object) -> CheckpointMeta:
        if not isinstance(value, dict):
            raise CheckpointInvalid("checkpoint manifest has no meta object: the checkpoint is damaged")
        strings = ("plan_id", "run_id", "created_at", "plan_path")
        counters = ("attempt", "sequence")
        if (
            any(not isinstance(value.get(name), str) for name in strings)
            or not value["plan_id"]
            or any(type(value.get(name)) is not int or value[name] < 0 for name in counters)
            or not (value.get("base_commit") is None or _COMMIT.match(str(value["base_commit"])))
        ):
            raise CheckpointInvalid("checkpoint manifest's meta is malformed: the checkpoint is damaged")
        return cls(
            plan_id=value["plan_id"],
            run_id=value["run_id"],
            attempt=value["attempt"],
            sequence=value["sequence"],
            base_commit=value.get("base_commit"),
            created_at=value["created_at"],
            plan_path=value["plan_path"],
        )


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint that passed every check. Nothing is written until `restore_sessions` is called."""

    meta: CheckpointMeta
    plan_bytes: bytes = field(repr=False)
    changes: bytes = field(repr=False)
    session_files: Mapping[str, Mapping[str, bytes]] = field(repr=False)  # id -> relative path -> bytes

    @property
    def session_ids(self) -> list[str]:
        return sorted(self.session_files)

    def restore_sessions(self, copilot_home: Path) -> list[str]:
        """Write each session into `copilot_home/session-state/<id>/`; return the ids written.

        Everything is written into a temporary folder inside the Copilot home first; an existing folder of
        the same id is then replaced by renames only, so a failure never leaves a half-written session.
        """
        home = copilot_home.resolve()
        state = home / "session-state"
        try:
            state.mkdir(parents=True, exist_ok=True, mode=0o700)
            if state.resolve() != state:
                raise CheckpointRestoreFailed(
                    f"{state} is a symlink: point the Copilot home at a real folder and re-run"
                )
            staging = Path(tempfile.mkdtemp(prefix=".planeteer-restore-", dir=home))
            try:
                for session_id, files in self.session_files.items():
                    _write_folder(staging / session_id, files)
                for session_id in self.session_ids:
                    _rename_into_place(staging / session_id, state / session_id, staging / f"{session_id}.old")
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError as exc:
            raise CheckpointRestoreFailed(
                f"cannot restore sessions into {state}: {exc.strerror or exc}: make the Copilot home writable"
            ) from None
        return self.session_ids


def build_checkpoint(
    meta: CheckpointMeta,
    plan_bytes: bytes,
    copilot_home: Path,
    session_ids: Iterable[str],
    changes: bytes,
    key: str | None = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """The checkpoint's bytes, sealed when `key` is given (an empty key counts as none, as an unset secret).

    Session folders that do not exist, and ids that are not this plan's, are skipped; so are symlinks,
    sockets, fifos, files that vanish while being read, and file names a reader would refuse.
    """
    members = {PLAN: plan_bytes}
    if changes:
        members[PATCH] = changes
    for session_id in sorted(set(session_ids)):
        if belongs_to_plan(session_id, meta.plan_id):
            folder = copilot_home / "session-state" / session_id
            for relative, data in _session_files(folder, limits.max_member_bytes):
                members[f"{SESSIONS}/{session_id}/{relative}"] = data
    for name in (PLAN, PATCH):
        if len(members.get(name, b"")) > limits.max_member_bytes:
            raise CheckpointTooLarge(
                f"{name} is {len(members[name])} bytes, over the per-file limit of {limits.max_member_bytes}"
            )
    _check_totals(
        len(members) + 1,
        sum(map(len, members.values())),
        limits,
        "keep large files out of the plan's sessions and working tree",
    )
    manifest = {
        "format": FORMAT,
        "meta": dataclasses.asdict(meta),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }
    inner = _zip({MANIFEST: _json_bytes(manifest), **members}, zipfile.ZIP_DEFLATED)
    if not key:
        return inner
    public = _public_manifest(meta)
    salt, nonce = os.urandom(_SALT_SIZE), os.urandom(_NONCE_SIZE)
    header = _MAGIC + salt + nonce
    sealed = header + AESGCM(_derive_key(key, salt)).encrypt(nonce, inner, header + public)
    return _zip({PUBLIC_MANIFEST: public, SEALED: sealed}, zipfile.ZIP_STORED)


def open_checkpoint(
    data: bytes, *, key: str | None, expected_plan_id: str | None, limits: Limits = DEFAULT_LIMITS
) -> Checkpoint:
    """Check a checkpoint completely, writing nothing; raise a CheckpointError naming the first problem."""
    if len(data) > limits.max_archive_bytes:
        raise CheckpointTooLarge(
            f"checkpoint is {len(data)} bytes, over the limit of {limits.max_archive_bytes}: start the plan afresh"
        )
    with _open_zip(data) as archive:
        sealed = SEALED in archive.namelist()
        if sealed and not key:
            raise CheckpointKeyMismatch(
                "this checkpoint is encrypted: set the state-key input to the secret used when it was saved"
            )
        if key and not sealed:
            raise CheckpointKeyMismatch(
                "this checkpoint is not encrypted although a state-key is set, and a plain checkpoint could "
                "have replaced an encrypted one: delete the artifact, or unset state-key if it is yours"
            )
        if key:
            public, inner = _unseal_archive(archive, key, limits)
            with _open_zip(inner) as inner_archive:
                members = _read_members(inner_archive, limits, _is_inner_name)
        else:
            public = None
            members = _read_members(archive, limits, _is_inner_name)
    checkpoint = _checkpoint_from(members)
    if public is not None and public != _public_manifest(checkpoint.meta):
        raise CheckpointInvalid(f"checkpoint's {PUBLIC_MANIFEST} disagrees with its sealed manifest: refused")
    if expected_plan_id is not None and checkpoint.meta.plan_id != expected_plan_id:
        raise CheckpointOfOtherPlan(
            f"checkpoint is of plan {checkpoint.meta.plan_id!r}, not {expected_plan_id!r}: it is ignored"
        )
    _check_contents(checkpoint)
    return checkpoint


def _check_contents(checkpoint: Checkpoint) -> None:
    """The plan must be a plan of the manifest's id, and the patch must stay inside the checkout.

    git would refuse such a patch too, but as a failure to apply, which stops a run; a forged checkpoint
    should instead be skipped like any other untrustworthy one.
    """
    try:
        plan = Plan.model_validate(json.loads(checkpoint.plan_bytes))
    except (ValueError, ValidationError):
        raise CheckpointInvalid(f"its {PLAN} is not a valid plan: it was damaged or forged") from None
    if plan.id != checkpoint.meta.plan_id:
        raise CheckpointInvalid(f"its {PLAN} is of plan {plan.id!r}, not the manifest's: it was forged")
    unsafe = path_outside_checkout(checkpoint.changes)
    if unsafe is not None:
        raise CheckpointInvalid(f"its workspace patch writes to {unsafe[:120]!r}, outside the checkout: refused")


# Writing --------------------------------------------------------------------------------------------------


def _session_files(folder: Path, max_bytes: int) -> Iterator[tuple[str, bytes]]:
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
            if not _is_safe_path(relative):
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


def _check_totals(count: int, total: int, limits: Limits, fix: str) -> None:
    if count > limits.max_members:
        raise CheckpointTooLarge(f"checkpoint has {count} files, over the limit of {limits.max_members}: {fix}")
    if total > limits.max_total_bytes:
        raise CheckpointTooLarge(f"checkpoint holds {total} bytes, over the limit of {limits.max_total_bytes}: {fix}")


def _zip(members: Mapping[str, bytes], compression: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = (stat.S_IFREG | 0o600) << 16
            info.compress_type = compression
            archive.writestr(info, data)
    return buffer.getvalue()


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode("utf-8")


def _public_manifest(meta: CheckpointMeta) -> bytes:
    """What anyone may read of a sealed checkpoint: enough to pick an artifact, nothing of the plan."""
    public = {
        "format": FORMAT,
        "plan": plan_fingerprint(meta.plan_id),
        "run_id": meta.run_id,
        "attempt": meta.attempt,
        "sequence": meta.sequence,
        "created_at": meta.created_at,
    }
    return _json_bytes(public)


def _derive_key(secret: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, **_SCRYPT).derive(secret.encode("utf-8"))


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


# Reading --------------------------------------------------------------------------------------------------


def _open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise CheckpointInvalid(
            "checkpoint is not a zip archive: the artifact is damaged or not a checkpoint"
        ) from None


def _is_safe_path(name: str) -> bool:
    """Relative, `/`-separated, no `..`, no backslash, colon (drive letters, streams) or control character."""
    if (
        not name
        or len(name) > 1024
        or name.startswith("/")
        or any(c in name for c in "\\:")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _is_inner_name(name: str) -> bool:
    parts = name.split("/")
    if parts[0] == SESSIONS:
        return len(parts) >= 3 and is_planeteer_session(parts[1])
    return name in (MANIFEST, PLAN, PATCH)


def _read_members(archive: zipfile.ZipFile, limits: Limits, allowed: Callable[[str], bool]) -> dict[str, bytes]:
    """Every member's bytes, after checking names, types and declared sizes, counting actual bytes too."""
    infos = archive.infolist()
    _check_totals(len(infos), sum(info.file_size for info in infos), limits, "refused")
    if len({info.filename for info in infos}) != len(infos):
        raise CheckpointInvalid("checkpoint has two members of the same name: it was tampered with")
    for info in infos:
        shown = repr(info.filename[:120])
        if not _is_safe_path(info.filename) or not allowed(info.filename):
            raise CheckpointInvalid(f"checkpoint member {shown} has an unsafe or unexpected name: refused")
        file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the writer recorded no type
        if info.is_dir() or file_type not in (0, stat.S_IFREG):
            raise CheckpointInvalid(f"checkpoint member {shown} is a symlink or special file: refused")
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointInvalid(f"checkpoint member {shown} uses an unsupported zip feature: refused")
        if info.file_size > limits.max_member_bytes:
            raise CheckpointTooLarge(
                f"checkpoint member {shown} is {info.file_size} bytes, "
                f"over the per-file limit of {limits.max_member_bytes}: refused"
            )
    return {info.filename: _read_member(archive, info) for info in infos}


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Read in chunks, never past the declared size, which the caller checked against the limits.

    The declared size may lie (a zip bomb). zipfile itself stops there too, and its CRC check then fails;
    counting here keeps the bound independent of that.
    """
    chunks, size = [], 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(_MIB):
                size += len(chunk)
                if size > info.file_size:
                    raise CheckpointTooLarge(
                        f"checkpoint member {info.filename[:120]!r} unpacks to more than it declares: refused"
                    )
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
        raise CheckpointInvalid(
            f"checkpoint member {info.filename[:120]!r} is damaged (bad data or checksum): refused"
        ) from None
    return b"".join(chunks)


def _unseal_archive(archive: zipfile.ZipFile, key: str, limits: Limits) -> tuple[bytes, bytes]:
    """The public manifest and the decrypted inner zip of a sealed checkpoint."""
    outer_limits = dataclasses.replace(
        limits,
        max_members=2,
        max_member_bytes=limits.max_archive_bytes,
        max_total_bytes=limits.max_archive_bytes,
    )
    outer = _read_members(archive, outer_limits, lambda name: name in (SEALED, PUBLIC_MANIFEST))
    if PUBLIC_MANIFEST not in outer:
        raise CheckpointInvalid(f"sealed checkpoint lacks {PUBLIC_MANIFEST}: the checkpoint is damaged")
    public, blob = outer[PUBLIC_MANIFEST], outer[SEALED]
    if len(blob) < _HEADER_SIZE or not blob.startswith(_MAGIC):
        raise CheckpointInvalid(f"{SEALED} is not in a sealed format this version reads: upgrade planeteer")
    header = blob[:_HEADER_SIZE]
    salt = header[len(_MAGIC) : len(_MAGIC) + _SALT_SIZE]
    nonce = header[len(_MAGIC) + _SALT_SIZE :]
    try:
        return public, AESGCM(_derive_key(key, salt)).decrypt(nonce, blob[_HEADER_SIZE:], header + public)
    except InvalidTag:
        raise CheckpointKeyMismatch(
            "checkpoint does not decrypt with this state-key (wrong key or tampered): "
            "set state-key to the secret used when it was saved"
        ) from None


def _checkpoint_from(members: dict[str, bytes]) -> Checkpoint:
    """Check the manifest against the members, then group the session files by id."""
    if MANIFEST not in members:
        raise CheckpointInvalid(f"checkpoint has no {MANIFEST}: it is not a planeteer checkpoint")
    try:
        manifest: Any = json.loads(members[MANIFEST])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointInvalid(f"checkpoint's {MANIFEST} is not valid JSON: the checkpoint is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointInvalid(
            f"checkpoint's {MANIFEST} is not of format {FORMAT}: it was written by another planeteer version"
        )
    meta = CheckpointMeta.from_json(manifest.get("meta"))
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(h, str) and _SHA256.match(h) for h in files.values()):
        raise CheckpointInvalid(f"checkpoint's {MANIFEST} has no valid file list: the checkpoint is damaged")
    unlisted = sorted(set(members) - {MANIFEST} - set(files))
    if unlisted:
        raise CheckpointInvalid(
            f"checkpoint member {unlisted[0]!r} is not listed in its manifest: it was tampered with"
        )
    missing = sorted(set(files) - set(members))
    if missing:
        raise CheckpointInvalid(
            f"checkpoint manifest lists {missing[0][:120]!r} but the archive lacks it: it is damaged"
        )
    for name, data in members.items():
        if name != MANIFEST and hashlib.sha256(data).hexdigest() != files[name]:
            raise CheckpointInvalid(
                f"checkpoint member {name!r} does not match its manifest hash: damaged or tampered with"
            )
    if PLAN not in members:
        raise CheckpointInvalid(f"checkpoint has no {PLAN}: it is damaged")
    sessions: dict[str, dict[str, bytes]] = {}
    for name, data in members.items():
        parts = name.split("/", 2)
        if parts[0] == SESSIONS:
            if not belongs_to_plan(parts[1], meta.plan_id):
                raise CheckpointInvalid(f"checkpoint holds session {parts[1]!r}, which is not its plan's: refused")
            sessions.setdefault(parts[1], {})[parts[2]] = data
    return Checkpoint(meta=meta, plan_bytes=members[PLAN], changes=members.get(PATCH, b""), session_files=sessions)
