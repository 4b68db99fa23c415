"""Checkpoint pieces written by hand, as an attacker (or a compromised step of the run) could write them."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import struct
import warnings
import zipfile

from planeteer_action.checkpoints.branches import GIT_BUNDLE
from planeteer_action.checkpoints.manifest import FORMAT, CheckpointMeta
from planeteer_action.checkpoints.naming import artifact_name
from planeteer_action.checkpoints.pieces import build_piece, piece_id
from planeteer_action.checkpoints.segments import Head, PieceRef, write_segment


def forge(
    files: dict[str, bytes],
    meta: CheckpointMeta,
    *,
    listed: dict[str, bytes] | None = None,
    modes: dict[str, int] | None = None,
    duplicate: str | None = None,
) -> bytes:
    """A plain piece whose manifest agrees with its members unless `listed` says otherwise."""
    manifest = {
        "format": FORMAT,
        "meta": meta.__dict__,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in (listed or files).items()},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (modes or {}).get(name, stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
        if duplicate:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # zipfile warns; an attacker would not care
                archive.writestr(duplicate, files[duplicate])
    return buffer.getvalue()


def many_entries(entries: int, declared: int) -> bytes:
    """A zip whose central directory lists one empty member `entries` times, while its end record says
    `declared`: cheap to make, and as costly to parse as a real zip of that many files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x", b"")
    data = buffer.getvalue()
    end = data.rindex(b"PK\x05\x06")
    (offset,) = struct.unpack_from("<L", data, end + 16)
    directory = data[offset:end] * entries
    record = bytearray(data[end:])
    struct.pack_into("<HHL", record, 8, declared, declared, len(directory))
    return data[:offset] + directory + bytes(record)


def one_segment(
    state_name: str,
    meta: CheckpointMeta,
    members: dict[str, bytes],
    key: str | None = None,
    *,
    bundles: tuple[bytes, ...] = (),
) -> bytes:
    """A segment whose head names one state piece holding `members` (and one piece per git bundle): a whole
    checkpoint in one upload, as anyone holding the key (or, plain, anyone at all) could write it. Upload it
    as `artifact_name(state_name, meta.attempt, meta.sequence)` or its cache copy."""
    segment = artifact_name(state_name, meta.attempt, meta.sequence)
    pieces = [(build_piece(meta, {GIT_BUNDLE: bundle}, key), "bundle") for bundle in bundles]
    pieces.append((build_piece(meta, members, key), "state"))
    refs = tuple(PieceRef(piece_id(data), len(data), segment, kind) for data, kind in pieces)
    return write_segment(Head(meta, refs).to_bytes(key), {piece_id(data): data for data, _ in pieces})
