"""A checkpoint carries plan, sessions and workspace changes in pieces; a damaged, forged or foreign piece is
refused, and so is a checkpoint its pieces make that could not be put back safely."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from checkpoint_forgery import forge as forge_checkpoint
from checkpoint_forgery import many_entries

from planeteer_action.checkpoints.archive import Checkpoint, assemble
from planeteer_action.checkpoints.errors import (
    CheckpointError,
    CheckpointInvalid,
    CheckpointKeyMismatch,
    CheckpointOfOtherPlan,
    CheckpointRestoreFailed,
    CheckpointTooLarge,
)
from planeteer_action.checkpoints.manifest import CheckpointMeta
from planeteer_action.checkpoints.naming import artifact_name, parse_artifact_name
from planeteer_action.checkpoints.pieces import build_piece, open_piece
from planeteer_action.checkpoints.session_files import changed_session_files
from planeteer_action.checkpoints.zip_io import DEFAULT_LIMITS, Limits
from planeteer_action.plan.session_ids import belongs_to_plan, session_id_for

PLAN_ID = "plan-123"
KEY = "correct horse battery staple"
FIRST = session_id_for(PLAN_ID, "write-tests", 1)
SECOND = session_id_for(PLAN_ID, "Fix the docs!", 2)
MISSING = session_id_for(PLAN_ID, "never-started", 1)
LINKED = session_id_for(PLAN_ID, "linked", 1)
FOREIGN = session_id_for("another-plan", "write-tests", 1)
PLAN_BYTES = json.dumps(
    {"id": PLAN_ID, "name": "demo", "tasks": [{"id": "write-tests", "title": "Write tests"}]}
).encode()
PATCH_BYTES = b"diff --git a/x b/x\nnew file mode 100644\n"
TRANSCRIPT = b'{"type":"user.message","data":{"content":"the secret sauce"}}\n'

Snapshot = dict[str, bytes | None]


def meta(**changes: object) -> CheckpointMeta:
    values: dict[str, object] = {
        "plan_id": PLAN_ID,
        "run_id": "987654321",
        "attempt": 2,
        "sequence": 7,
        "base_commit": "a" * 40,
        "created_at": "2026-05-01T12:00:00+00:00",
        "plan_path": "plans/plan.json",
    }
    values.update(changes)
    return CheckpointMeta(**values)  # type: ignore[arg-type]


def snapshot(root: Path) -> Snapshot:
    """Every path below `root`: file bytes, or None for folders and other entries."""
    found: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            regular = path.is_file() and not path.is_symlink()
            found[path.relative_to(root).as_posix()] = path.read_bytes() if regular else None
    return found


@pytest.fixture
def source_home(tmp_path: Path) -> Path:
    """A Copilot home on the machine that saves: two sessions of the plan, one of another plan, and traps."""
    home = tmp_path / "source-copilot"
    state = home / "session-state"
    first = state / FIRST
    (first / "files" / "nested").mkdir(parents=True)
    (first / "events.jsonl").write_bytes(TRANSCRIPT * 3)
    (first / "workspace.yaml").write_text("cwd: /work/repo\n")
    (first / "files" / "nested" / "blob.bin").write_bytes(bytes(range(256)))
    (first / "escape").symlink_to(tmp_path / "outside.txt")
    (tmp_path / "outside.txt").write_text("never copied\n")
    os.mkfifo(first / "pipe")
    (state / SECOND).mkdir()
    (state / SECOND / "events.jsonl").write_bytes(TRANSCRIPT)
    (state / LINKED).symlink_to(first)
    (state / FOREIGN).mkdir()
    (state / FOREIGN / "events.jsonl").write_text("someone else's\n")
    return home


def build(source_home: Path, key: str | None = None, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """One piece holding the plan, the patch and the plan's session folders, as the packer reads them."""
    members = {"plan.json": PLAN_BYTES, "workspace.patch": PATCH_BYTES}
    for session_id in sorted({FIRST, SECOND, MISSING, LINKED, FOREIGN}):
        if belongs_to_plan(session_id, PLAN_ID):
            folder = source_home / "session-state" / session_id
            for relative, _, data, _ in changed_session_files(folder, {}, limits.max_member_bytes):
                members[f"sessions/{session_id}/{relative}"] = data
    return build_piece(meta(), members, key, limits=limits)


def open_checkpoint(
    data: bytes, *, key: str | None, expected_plan_id: str | None, limits: Limits = DEFAULT_LIMITS
) -> Checkpoint:
    """The checkpoint a head naming this one piece makes, as a restore checks it."""
    piece = open_piece(data, key=key, expected_plan_id=expected_plan_id, limits=limits)
    return assemble(piece.meta, [piece], limits)


def restore_sessions(checkpoint: Checkpoint, copilot_home: Path) -> list[str]:
    with checkpoint.stage_sessions(copilot_home) as staged:
        return staged.move_into_place()


def session_folders(home: Path) -> dict[str, Snapshot]:
    state = home / "session-state"
    return {entry.name: snapshot(entry) for entry in sorted(state.iterdir())}


# Round trips ----------------------------------------------------------------------------------------------


def test_a_plain_checkpoint_round_trips_into_a_fresh_copilot_home(source_home: Path, tmp_path: Path) -> None:
    checkpoint = open_checkpoint(build(source_home), key=None, expected_plan_id=PLAN_ID)
    target = tmp_path / "fresh-copilot"

    restored = restore_sessions(checkpoint, target)

    assert checkpoint.meta == meta()
    assert checkpoint.plan_bytes == PLAN_BYTES
    assert checkpoint.changes == PATCH_BYTES
    assert checkpoint.session_ids == restored == sorted([FIRST, SECOND])
    expected = session_folders(source_home)
    del expected[FOREIGN], expected[LINKED]
    for trap in ("escape", "pipe"):
        del expected[FIRST][trap]
    assert session_folders(target) == expected
    assert os.listdir(target) == ["session-state"]


def test_a_sealed_checkpoint_round_trips_and_shows_nothing_in_clear(source_home: Path, tmp_path: Path) -> None:
    data = build(source_home, KEY)

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["checkpoint.sealed", "manifest-public.json"]
        public = json.loads(archive.read("manifest-public.json"))
    assert b"secret sauce" not in data and PLAN_ID.encode() not in data and b"write-tests" not in data
    assert public["attempt"] == 2 and public["sequence"] == 7 and public["run_id"] == "987654321"

    checkpoint = open_checkpoint(data, key=KEY, expected_plan_id=PLAN_ID)
    target = tmp_path / "fresh-copilot"
    restore_sessions(checkpoint, target)

    assert (checkpoint.meta, checkpoint.plan_bytes, checkpoint.changes) == (meta(), PLAN_BYTES, PATCH_BYTES)
    assert (target / "session-state" / FIRST / "events.jsonl").read_bytes() == TRANSCRIPT * 3
    assert "secret" not in repr(checkpoint) and KEY not in repr(checkpoint)


def test_an_empty_key_counts_as_none(source_home: Path) -> None:
    data = build(source_home, "")
    assert open_checkpoint(data, key="", expected_plan_id=None).plan_bytes == PLAN_BYTES


def test_empty_changes_and_no_sessions_make_a_minimal_checkpoint(tmp_path: Path) -> None:
    data = build_piece(meta(base_commit=None), {"plan.json": PLAN_BYTES}, None)

    checkpoint = open_checkpoint(data, key=None, expected_plan_id=PLAN_ID)

    assert (checkpoint.changes, checkpoint.session_ids, checkpoint.meta.base_commit) == (b"", [], None)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["manifest.json", "plan.json"]


def test_a_file_over_the_per_file_limit_stops_the_save(source_home: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointTooLarge, match=r"events\.jsonl is over the per-file limit of 100 bytes"):
        build(source_home, limits=Limits(max_member_bytes=100))
    with pytest.raises(CheckpointTooLarge, match=r"plan\.json is 200 bytes, over the per-file limit of 100"):
        build_piece(meta(), {"plan.json": b"x" * 200}, None, limits=Limits(max_member_bytes=100))


# Restoring ------------------------------------------------------------------------------------------------


def test_restore_replaces_a_same_id_folder_and_leaves_other_sessions_alone(source_home: Path, tmp_path: Path) -> None:
    target = tmp_path / "fresh-copilot"
    (target / "session-state" / FIRST).mkdir(parents=True)
    (target / "session-state" / FIRST / "stale.txt").write_text("from an older attempt\n")
    (target / "session-state" / "someone-elses-session").mkdir()
    (target / "session-state" / "someone-elses-session" / "events.jsonl").write_text("mine\n")

    restore_sessions(open_checkpoint(build(source_home), key=None, expected_plan_id=PLAN_ID), target)

    assert not (target / "session-state" / FIRST / "stale.txt").exists()
    assert (target / "session-state" / FIRST / "events.jsonl").read_bytes() == TRANSCRIPT * 3
    assert (target / "session-state" / "someone-elses-session" / "events.jsonl").read_text() == "mine\n"
    assert sorted(os.listdir(target)) == ["session-state"]


def test_restore_refuses_a_session_state_symlink_and_writes_nothing_through_it(
    source_home: Path, tmp_path: Path
) -> None:
    target = tmp_path / "fresh-copilot"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target.mkdir()
    (target / "session-state").symlink_to(elsewhere)
    checkpoint = open_checkpoint(build(source_home), key=None, expected_plan_id=PLAN_ID)

    with pytest.raises(CheckpointRestoreFailed, match="is a symlink"):
        restore_sessions(checkpoint, target)

    assert os.listdir(elsewhere) == []


# Refusals -------------------------------------------------------------------------------------------------


def forge(
    files: dict[str, bytes],
    *,
    listed: dict[str, bytes] | None = None,
    modes: dict[str, int] | None = None,
    plan_id: str = PLAN_ID,
    duplicate: str | None = None,
) -> bytes:
    """A plain checkpoint an attacker wrote by hand, with a manifest that agrees unless told otherwise."""
    return forge_checkpoint(files, meta(plan_id=plan_id), listed=listed, modes=modes, duplicate=duplicate)


def rewrite(data: bytes, change: Callable[[dict[str, bytes]], object]) -> bytes:
    """The same zip with members changed by `change`, each with a valid CRC (so only our checks can tell)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    change(members)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def flip(members: dict[str, bytes], name: str, index: int = -1) -> None:
    content = bytearray(members[name])
    content[index] ^= 0x01
    members[name] = bytes(content)


def zip_bomb() -> bytes:
    """A member that declares 100 bytes and inflates to 8 MB: its sizes are patched after writing."""
    name = f"sessions/{FIRST}/events.jsonl".encode()
    data = bytearray(forge({"plan.json": PLAN_BYTES, name.decode(): b"\0" * (8 * 1024 * 1024)}))
    local = data.index(name) - 30
    central = data.index(name, data.index(b"PK\x01\x02")) - 46
    assert data[local : local + 4] == b"PK\x03\x04" and data[central : central + 4] == b"PK\x01\x02"
    data[local + 22 : local + 26] = data[central + 24 : central + 28] = struct.pack("<I", 100)
    return bytes(data)


PLAN_ONLY = {"plan.json": PLAN_BYTES}
ESCAPING_UNIFIED_DIFF = b"--- a/escape.txt\n+++ b/../escape.txt\n@@ -0,0 +1 @@\n+EVIL\n"


def link_patch(path: str, target: str) -> bytes:
    """What `git diff --binary` writes for a new symlink."""
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 120000\nindex 0000000..1234567\n--- /dev/null\n"
        f"+++ b/{path}\n@@ -0,0 +1 @@\n+{target}\n\\ No newline at end of file\n"
    ).encode()


EVENTS = f"sessions/{FIRST}/events.jsonl"
Make = Callable[[bytes, bytes], bytes]  # (plain, sealed) -> the bytes to open

# name: (make the data, the key to open it with, the error expected, a part of its message)
REFUSALS: dict[str, tuple[Make, str | None, type[CheckpointError], str]] = {
    "not a zip": (lambda plain, sealed: b"hello", None, CheckpointInvalid, "is not a zip archive"),
    "missing key": (
        lambda plain, sealed: sealed,
        None,
        CheckpointKeyMismatch,
        "this checkpoint is encrypted: set the state-key input to the secret used when it was saved",
    ),
    "wrong key": (
        lambda plain, sealed: sealed,
        "guess",
        CheckpointKeyMismatch,
        "does not decrypt with this state-key (wrong key or tampered)",
    ),
    "key given for a plain checkpoint": (
        lambda plain, sealed: plain,
        KEY,
        CheckpointKeyMismatch,
        "is not encrypted although a state-key is set",
    ),
    "flipped ciphertext byte": (
        lambda plain, sealed: rewrite(sealed, lambda m: flip(m, "checkpoint.sealed")),
        KEY,
        CheckpointKeyMismatch,
        "(wrong key or tampered)",
    ),
    "edited public manifest": (
        lambda plain, sealed: rewrite(sealed, lambda m: m.update({"manifest-public.json": b'{"attempt": 9}'})),
        KEY,
        CheckpointKeyMismatch,
        "(wrong key or tampered)",
    ),
    "flipped member byte": (
        lambda plain, sealed: rewrite(plain, lambda m: flip(m, EVENTS, 5)),
        None,
        CheckpointInvalid,
        f"checkpoint member '{EVENTS}' does not match its manifest hash",
    ),
    "unlisted member": (
        lambda plain, sealed: rewrite(plain, lambda m: m.update({f"sessions/{FIRST}/extra": b"x"})),
        None,
        CheckpointInvalid,
        "is not listed in its manifest",
    ),
    "listed member missing": (
        lambda plain, sealed: rewrite(plain, lambda m: m.pop(EVENTS)),
        None,
        CheckpointInvalid,
        "but the archive lacks it",
    ),
    "no manifest": (
        lambda plain, sealed: rewrite(plain, lambda m: m.pop("manifest.json")),
        None,
        CheckpointInvalid,
        "has no manifest.json",
    ),
    "duplicate member": (
        lambda plain, sealed: forge({**PLAN_ONLY, EVENTS: b"x"}, duplicate=EVENTS),
        None,
        CheckpointInvalid,
        "two members of the same name",
    ),
    "dot-dot member": (
        lambda plain, sealed: forge({**PLAN_ONLY, "../evil": b"x"}),
        None,
        CheckpointInvalid,
        "unsafe",
    ),
    "dot-dot inside sessions": (
        lambda plain, sealed: forge({**PLAN_ONLY, f"sessions/{FIRST}/../../../evil": b"x"}),
        None,
        CheckpointInvalid,
        "unsafe",
    ),
    "absolute member": (
        lambda plain, sealed: forge({**PLAN_ONLY, "/tmp/evil": b"x"}),
        None,
        CheckpointInvalid,
        "'/tmp/evil' has an unsafe or unexpected name",
    ),
    "backslash member": (
        lambda plain, sealed: forge({**PLAN_ONLY, f"sessions/{FIRST}/..\\..\\evil": b"x"}),
        None,
        CheckpointInvalid,
        "unsafe",
    ),
    "drive letter member": (
        lambda plain, sealed: forge({**PLAN_ONLY, "C:/evil": b"x"}),
        None,
        CheckpointInvalid,
        "unsafe",
    ),
    "unexpected top-level member": (
        lambda plain, sealed: forge({**PLAN_ONLY, "run.sh": b"x"}),
        None,
        CheckpointInvalid,
        "unsafe or unexpected name",
    ),
    "badly named session folder": (
        lambda plain, sealed: forge({**PLAN_ONLY, "sessions/my-own-session/events.jsonl": b"x"}),
        None,
        CheckpointInvalid,
        "unsafe or unexpected name",
    ),
    "symlink member": (
        lambda plain, sealed: forge({**PLAN_ONLY, EVENTS: b"/etc/passwd"}, modes={EVENTS: stat.S_IFLNK | 0o777}),
        None,
        CheckpointInvalid,
        "is a symlink or special file",
    ),
    "another plan's session inside": (
        lambda plain, sealed: forge({**PLAN_ONLY, f"sessions/{FOREIGN}/events.jsonl": b"x"}),
        None,
        CheckpointInvalid,
        "which is not its plan's",
    ),
    "zip bomb declared small": (lambda plain, sealed: zip_bomb(), None, CheckpointError, "refused"),
    "oversized member": (
        lambda plain, sealed: forge({**PLAN_ONLY, EVENTS: b"\0" * (2 * 1024 * 1024)}),
        None,
        CheckpointTooLarge,
        "over the per-file limit of 1048576",
    ),
    "compressible members over the total": (
        lambda plain, sealed: forge({**PLAN_ONLY, **{f"{EVENTS}{n}": b"\0" * 1_000_000 for n in range(5)}}),
        None,
        CheckpointTooLarge,
        "over the limit of 4194304",
    ),
    "too many members": (
        lambda plain, sealed: forge({**PLAN_ONLY, **{f"{EVENTS}{n}": b"" for n in range(20)}}),
        None,
        CheckpointTooLarge,
        "over the limit of 16",
    ),
    "a session file that is also a folder": (
        lambda plain, sealed: forge({**PLAN_ONLY, f"sessions/{FIRST}/a": b"x", f"sessions/{FIRST}/a/b": b"y"}),
        None,
        CheckpointInvalid,
        f"its session {FIRST} holds 'a' both as a file and as a folder",
    ),
    "traditional diff leaving the checkout": (
        lambda plain, sealed: forge({**PLAN_ONLY, "workspace.patch": ESCAPING_UNIFIED_DIFF}),
        None,
        CheckpointInvalid,
        "its workspace patch writes to '../escape.txt', outside the checkout",
    ),
    "patch making an absolute symlink": (
        lambda plain, sealed: forge({**PLAN_ONLY, "workspace.patch": link_patch("evil", "/root/.bashrc")}),
        None,
        CheckpointInvalid,
        "its workspace patch makes the link 'evil' point to '/root/.bashrc', outside the checkout",
    ),
    "patch making a symlink that climbs out": (
        lambda plain, sealed: forge({**PLAN_ONLY, "workspace.patch": link_patch("docs/up", "../../home")}),
        None,
        CheckpointInvalid,
        "makes the link 'docs/up' point to '../../home', outside the checkout",
    ),
    "patch making a symlink that climbs out through a folder": (
        lambda plain, sealed: forge({**PLAN_ONLY, "workspace.patch": link_patch("up", "docs/../..")}),
        None,
        CheckpointInvalid,
        "outside the checkout",
    ),
    "central directory longer than its end record says": (
        lambda plain, sealed: many_entries(40, declared=1),
        None,
        CheckpointTooLarge,
        "over the limit of 16",
    ),
    "foreign plan": (
        lambda plain, sealed: forge(PLAN_ONLY, plan_id="someone-elses-plan"),
        None,
        CheckpointOfOtherPlan,
        "checkpoint is of plan 'someone-elses-plan', not 'plan-123'",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_bad_checkpoint_is_refused_with_its_reason_and_writes_nothing(
    case: str, source_home: Path, tmp_path: Path
) -> None:
    make, key, error, message = REFUSALS[case]
    data = make(build(source_home), build(source_home, KEY))
    target = tmp_path / "fresh-copilot"
    target.mkdir()
    before = snapshot(tmp_path)

    with pytest.raises(error) as refused:
        open_checkpoint(
            data,
            key=key,
            expected_plan_id=PLAN_ID,
            limits=Limits(max_members=16, max_member_bytes=1024 * 1024, max_total_bytes=4 * 1024 * 1024),
        )

    reason = str(refused.value)
    assert message in reason
    assert "\n" not in reason and KEY not in reason and "secret sauce" not in reason
    assert snapshot(tmp_path) == before


def test_an_oversized_archive_is_refused_before_it_is_read(source_home: Path) -> None:
    with pytest.raises(CheckpointTooLarge, match="over the limit of 1000"):
        open_checkpoint(build(source_home), key=None, expected_plan_id=None, limits=Limits(max_archive_bytes=1000))


def test_a_patch_with_links_that_stay_inside_the_checkout_is_accepted() -> None:
    patch = link_patch("docs/readme", "../README.md") + link_patch("latest", "./releases/v2")
    data = forge({**PLAN_ONLY, "workspace.patch": patch})

    assert open_checkpoint(data, key=None, expected_plan_id=PLAN_ID).changes == patch


@pytest.mark.parametrize("declared", [60_000, 1], ids=["declared", "end-record-lies"])
def test_a_zip_of_very_many_entries_is_refused_from_its_central_directory_at_little_cost(declared: int) -> None:
    data = many_entries(60_000, declared)  # parsed into zipfile's objects, 60,000 entries take 25 MB
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointTooLarge, match="over the limit of 10000: refused"):
            open_checkpoint(data, key=None, expected_plan_id=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 2 * 1024 * 1024


# Artifact names -------------------------------------------------------------------------------------------


def test_artifact_names_are_padded_parsable_and_safe() -> None:
    name = artifact_name('plan/one: "<x>"|*?\\\r\n', 3, 42)

    assert name == "planeteer-plan-one-x-attempt003-seq000042"
    assert parse_artifact_name(name, 'plan/one: "<x>"|*?\\\r\n') == (3, 42)
    assert parse_artifact_name(name, "plan") is None
    assert parse_artifact_name(artifact_name("plan-one-x-attempt003-seq000042", 1, 1), "plan-one-x") is None
    assert artifact_name("///", 1, 1) == "planeteer-plan-attempt001-seq000001"
