"""Zip archives in and out, with untrusted input in mind: bounded before anything is parsed or unpacked.

`zipfile` turns the whole central directory into objects before a caller can look at it, so a small
archive listing millions of entries costs seconds and gigabytes. `open_zip` first walks the central
directory itself, counting its entries, and stops at the limit; declared sizes are checked before any
member is unpacked.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from planeteer_action.checkpoints.errors import CheckpointInvalid, CheckpointTooLarge

_MIB = 1024 * 1024
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_END_RECORD = struct.Struct("<4s4H2LH")  # signature, disks, entries here, entries, directory size and offset, comment
_ENTRY = struct.Struct("<4s6H3L5H2L")  # a central directory entry's fixed part
_ZIP64_LOCATOR = b"PK\x06\x07"
_NOT_A_ZIP = "checkpoint is not a zip archive: the artifact is damaged or not a checkpoint"


@dataclass(frozen=True)
class Limits:
    """Bounds on what `open_checkpoint` reads, so a hostile or broken artifact cannot exhaust the runner."""

    max_archive_bytes: int = 300 * _MIB
    max_members: int = 10_000
    max_member_bytes: int = 64 * _MIB
    max_total_bytes: int = 256 * _MIB


DEFAULT_LIMITS = Limits()


def write_zip(members: Mapping[str, bytes], compression: int) -> bytes:
    """A zip of regular files with fixed dates and modes, so equal members give equal bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = (stat.S_IFREG | 0o600) << 16
            info.compress_type = compression
            archive.writestr(info, data)
    return buffer.getvalue()


def check_totals(count: int, total: int, limits: Limits, fix: str) -> None:
    if count > limits.max_members:
        raise CheckpointTooLarge(f"checkpoint has {count} files, over the limit of {limits.max_members}: {fix}")
    if total > limits.max_total_bytes:
        raise CheckpointTooLarge(f"checkpoint holds {total} bytes, over the limit of {limits.max_total_bytes}: {fix}")


def open_zip(data: bytes, limits: Limits) -> zipfile.ZipFile:
    """The archive, once its central directory is known to stay within the count and size limits."""
    _check_central_directory(data, limits)
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise CheckpointInvalid(_NOT_A_ZIP) from None


def _check_central_directory(data: bytes, limits: Limits) -> None:
    """Count the entries of the central directory `zipfile` would read (found as it finds it), stopping at
    the limit; the end record's own count may lie. Declared sizes are checked per member before reading.

    Zip64 is refused: a checkpoint within the limits never needs it, and its fields would need a second parser.
    """
    end = _end_record_position(data)
    _, disk, _, _, declared, size, offset, _ = _END_RECORD.unpack_from(data, end)
    if disk or offset == 0xFFFFFFFF or (end >= 20 and data[end - 20 : end - 16] == _ZIP64_LOCATOR):
        raise CheckpointInvalid("checkpoint uses zip64 or spans disks, which checkpoints never need: refused")
    check_totals(declared, 0, limits, "refused")
    position, count = end - size, 0
    if position < 0:
        raise CheckpointInvalid(_NOT_A_ZIP)
    while position < end:
        if position + _ENTRY.size > end or data[position : position + 4] != b"PK\x01\x02":
            raise CheckpointInvalid("checkpoint's zip directory is damaged: refused")
        count += 1
        check_totals(count, 0, limits, "refused")
        name, extra, comment = _ENTRY.unpack_from(data, position)[10:13]
        position += _ENTRY.size + name + extra + comment


def _end_record_position(data: bytes) -> int:
    """Where the end of central directory record is: last, or before a comment of up to 64 KiB."""
    last = len(data) - _END_RECORD.size
    if last >= 0 and data[last : last + 4] == b"PK\x05\x06" and data[-2:] == b"\0\0":
        return last
    found = data.rfind(b"PK\x05\x06", max(0, last - 0xFFFF))
    if found < 0 or found + _END_RECORD.size > len(data):
        raise CheckpointInvalid(_NOT_A_ZIP)
    return found


def is_safe_path(name: str) -> bool:
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


def read_members(archive: zipfile.ZipFile, limits: Limits, allowed: Callable[[str], bool]) -> dict[str, bytes]:
    """Every member's bytes, after checking names, types and declared sizes, counting actual bytes too."""
    return {info.filename: read_member(archive, info) for info in check_members(archive, limits, allowed)}


def check_members(archive: zipfile.ZipFile, limits: Limits, allowed: Callable[[str], bool]) -> list[zipfile.ZipInfo]:
    """The members, once every one's name, type and declared size is known to be acceptable (nothing read yet)."""
    infos = archive.infolist()
    check_totals(len(infos), sum(info.file_size for info in infos), limits, "refused")
    if len({info.filename for info in infos}) != len(infos):
        raise CheckpointInvalid("checkpoint has two members of the same name: it was tampered with")
    for info in infos:
        shown = repr(info.filename[:120])
        if not is_safe_path(info.filename) or not allowed(info.filename):
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
    return infos


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
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
