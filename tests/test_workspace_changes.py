"""The working tree's changes travel as a patch from one checkout to a fresh clone at another path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import git

from planeteer_action.checkpoints.patch_safety import link_outside_checkout, path_outside_checkout
from planeteer_action.checkpoints.workspace import (
    WorkspaceChangesError,
    apply_changes,
    capture_changes,
    head_commit,
)

BINARY = bytes(range(256)) * 4


def tree(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every file below `root` except `.git`: its kind (and executable bit) and its content."""
    found: dict[str, tuple[str, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = Path(dirpath, name)
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path))
            else:
                found[relative] = ("exec" if os.access(path, os.X_OK) else "file", path.read_bytes())
    return found


def state(root: Path) -> tuple[dict[str, tuple[str, bytes | str]], str, str]:
    """What a refused apply must leave alone: files, status and HEAD."""
    return (
        tree(root),
        git(root, "status", "--porcelain", "--untracked-files=all"),
        git(root, "rev-parse", "HEAD"),
    )


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("hello\n")
    (repo / "data.bin").write_bytes(BINARY)
    (repo / "obsolete.txt").write_text("to be deleted\n")
    (repo / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (repo / "notes with spaces.txt").write_text("first\n")
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("print('v1')\n")
    (repo / "windows.txt").write_bytes(b"one\r\ntwo\r\n")
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def clone_at(origin: Path, target: Path) -> Path:
    git(origin.parent, "clone", "-q", str(origin), str(target))
    return target


def make_changes(repo: Path) -> None:
    (repo / "README.md").write_text("hello\nworld\n")
    (repo / "data.bin").write_bytes(BINARY[::-1] + b"\x00tail")
    (repo / "obsolete.txt").unlink()
    (repo / "run.sh").chmod(0o755)
    (repo / "notes with spaces.txt").write_text("first\nsecond\n")
    (repo / "new dir" / "deeper").mkdir(parents=True)
    (repo / "new dir" / "deeper" / "image one.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff" * 50)
    (repo / "new dir" / "empty.txt").write_bytes(b"")
    (repo / "src" / "link").symlink_to("app.py")
    (repo / "windows.txt").write_bytes(b"one\r\nTWO\r\nno final newline")
    (repo / "src" / 'café "quoted".txt').write_text("unicode name\n")
    (repo / "debug.log").write_text("ignored: must not travel\n")


def test_round_trip_to_a_fresh_clone_at_another_path_gives_identical_trees(origin: Path, tmp_path: Path) -> None:
    base = head_commit(origin)
    clone = clone_at(origin, tmp_path / "elsewhere" / "clone")
    make_changes(origin)

    patch = capture_changes(origin, base, exclude=[])
    changed = apply_changes(clone, base, patch)

    expected = tree(origin)
    del expected["debug.log"]
    assert tree(clone) == expected
    assert set(changed) == {
        "README.md",
        "data.bin",
        "obsolete.txt",
        "run.sh",
        "notes with spaces.txt",
        "new dir/deeper/image one.png",
        "new dir/empty.txt",
        "src/link",
        "windows.txt",
        'src/café "quoted".txt',
    }


def test_work_committed_after_the_base_commit_still_travels(origin: Path, tmp_path: Path) -> None:
    base = head_commit(origin)
    clone = clone_at(origin, tmp_path / "clone")
    (origin / "src" / "app.py").write_text("print('v2')\n")
    git(origin, "commit", "-q", "-am", "an agent committed")
    (origin / "src" / "more.py").write_text("x = 1\n")

    apply_changes(clone, base, capture_changes(origin, base, exclude=[]))

    assert (clone / "src" / "app.py").read_text() == "print('v2')\n"
    assert (clone / "src" / "more.py").read_text() == "x = 1\n"


def test_a_subdirectory_of_the_repository_captures_and_applies_the_whole_tree(origin: Path, tmp_path: Path) -> None:
    base = head_commit(origin)
    clone = clone_at(origin, tmp_path / "clone")
    make_changes(origin)

    patch = capture_changes(origin / "src", base, exclude=[])
    changed = apply_changes(clone / "src", base, patch)

    assert "README.md" in changed
    assert (clone / "README.md").read_text() == "hello\nworld\n"
    assert (clone / "new dir" / "empty.txt").exists()


def test_excluded_paths_stay_out_of_the_patch(origin: Path, tmp_path: Path) -> None:
    base = head_commit(origin)
    clone = clone_at(origin, tmp_path / "clone")
    (origin / "plans").mkdir()
    (origin / "plans" / "plan.json").write_text('{"id": "p"}')
    (origin / "plans" / "plan.md").write_text("# plan")
    (origin / "plans" / ".plan.json.k2j_9a.tmp").write_text("an atomic save in flight")
    (origin / "plans" / ".plan.md.zz.tmp").write_text("an atomic save in flight")
    (origin / ".copilot" / "session-state" / "planeteer-0a1b2c3d-t-a1").mkdir(parents=True)
    (origin / ".copilot" / "session-state" / "planeteer-0a1b2c3d-t-a1" / "events.jsonl").write_text("secret\n")
    (origin / "src" / "app.py").write_text("print('edited, excluded')\n")
    (origin / "kept.txt").write_text("travels\n")

    patch = capture_changes(
        origin / "src",
        base,
        exclude=[
            origin / "plans" / "plan.json",
            Path("../plans/plan.md"),
            origin / ".copilot",
            Path("app.py"),
        ],
    )

    assert b"plan.json" not in patch and b"plan.md" not in patch and b".tmp" not in patch
    assert b".copilot" not in patch and b"secret" not in patch and b"app.py" not in patch
    assert apply_changes(clone, base, patch) == ["kept.txt"]


def test_capture_leaves_the_users_own_index_untouched(origin: Path) -> None:
    base = head_commit(origin)
    make_changes(origin)
    git(origin, "add", "README.md")
    index = origin / ".git" / "index"
    before = (index.read_bytes(), git(origin, "status", "--porcelain"))

    capture_changes(origin, base, exclude=[])

    assert (index.read_bytes(), git(origin, "status", "--porcelain")) == before


def test_no_changes_give_an_empty_patch_and_applying_it_changes_nothing(origin: Path, tmp_path: Path) -> None:
    base = head_commit(origin)
    clone = clone_at(origin, tmp_path / "clone")
    (origin / "only.log").write_text("ignored\n")

    patch = capture_changes(origin, base, exclude=[])
    before = state(clone)

    assert patch == b""
    assert apply_changes(clone, base, patch) == []
    assert state(clone) == before


def test_a_checkout_at_another_commit_is_refused_and_left_unchanged(origin: Path, tmp_path: Path) -> None:
    base = head_commit(origin)
    clone = clone_at(origin, tmp_path / "clone")
    (clone / "README.md").write_text("moved on\n")
    git(clone, "commit", "-q", "-am", "another commit")
    make_changes(origin)
    patch = capture_changes(origin, base, exclude=[])
    before = state(clone)

    with pytest.raises(WorkspaceChangesError) as refused:
        apply_changes(clone, base, patch)

    message = str(refused.value)
    assert f"this checkout is at {head_commit(clone)}" in message
    assert f"check out {base} (actions/checkout with ref: {base}) and re-run" in message
    assert "\n" not in message
    assert state(clone) == before


def test_a_conflicting_checkout_is_refused_and_left_unchanged(origin: Path, tmp_path: Path) -> None:
    base = head_commit(origin)
    clone = clone_at(origin, tmp_path / "clone")
    make_changes(origin)
    patch = capture_changes(origin, base, exclude=[])
    (clone / "README.md").write_text("a local edit in the way\n")
    before = state(clone)

    with pytest.raises(WorkspaceChangesError, match="do not apply to this checkout"):
        apply_changes(clone, base, patch)

    assert state(clone) == before
    assert not (clone / "new dir").exists()


def test_changes_over_the_size_cap_are_refused_naming_size_and_cap(origin: Path, tmp_path: Path) -> None:
    base = head_commit(origin)
    clone = clone_at(origin, tmp_path / "clone")
    (origin / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))

    with pytest.raises(WorkspaceChangesError, match=r"\d+\.\d MB patch, over the 1\.0 MB cap"):
        capture_changes(origin, base, exclude=[], max_bytes=1024 * 1024)

    patch = capture_changes(origin, base, exclude=[])
    before = state(clone)
    with pytest.raises(WorkspaceChangesError, match=r"over the 1\.0 MB cap"):
        apply_changes(clone, base, patch, max_bytes=1024 * 1024)
    assert state(clone) == before


def test_a_folder_outside_any_repository_is_a_plain_error(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceChangesError, match="git rev-parse failed"):
        capture_changes(tmp_path, "0" * 40, exclude=[])


def diff(path: str, body: str = "@@ -0,0 +1 @@\n+x\n") -> str:
    return f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n{body}"


@pytest.mark.parametrize(
    ("patch", "unsafe"),
    [
        (diff("src/app.py"), None),
        (diff("src/app.py", "@@ -1,2 +1 @@\n--- ../../not/a/header\n-x\n+y\n"), None),  # a removed line
        (diff("src/..hidden/x"), None),
        (diff("../../evil"), "../../evil"),
        (diff(".git/hooks/pre-commit"), ".git/hooks/pre-commit"),
        (diff("sub/.GIT/config"), "sub/.GIT/config"),
        ('diff --git "a/\\056\\056/evil" "b/\\056\\056/evil"\n--- /dev/null\n+++ "b/\\056\\056/evil"\n', "../evil"),
        ("diff --git a/x b/x\nsimilarity index 90%\nrename from x\nrename to ../y\n", "../y"),
        ("diff --git a//etc/passwd b//etc/passwd\n", "/etc/passwd"),
        ("--- a/escape.txt\n+++ b/../escape.txt\n@@ -0,0 +1 @@\n+EVIL\n", "../escape.txt"),  # no git header
        (diff("src/app.py") + "--- a/x\n+++ b/../y\n@@ -1 +1 @@\n-a\n+b\n", "../y"),  # after a git diff
        ("--- a/x\n+++ b/x\n@@ -1,2 +1 @@\n--- ../../not/a/header\n-x\n+y\n", None),  # a removed line
    ],
)
def test_patches_that_would_write_outside_the_checkout_are_recognised(patch: str, unsafe: str | None) -> None:
    assert path_outside_checkout(patch.encode()) == unsafe


def test_links_a_patch_would_make_outside_the_checkout_are_recognised(origin: Path) -> None:
    base = head_commit(origin)
    (origin / "docs" / "v1").mkdir(parents=True)
    (origin / "docs" / "v1" / "readme").symlink_to("../../README.md")
    (origin / "docs" / "latest").symlink_to("v1")
    (origin / "here").symlink_to(".")
    assert link_outside_checkout(capture_changes(origin, base, exclude=[])) is None

    (origin / "evil").symlink_to("/root/.bashrc")
    assert link_outside_checkout(capture_changes(origin, base, exclude=[])) == ("evil", "/root/.bashrc")
    (origin / "evil").unlink()
    (origin / "docs" / "up").symlink_to("../..")
    assert link_outside_checkout(capture_changes(origin, base, exclude=[])) == ("docs/up", "../..")
    (origin / "docs" / "up").unlink()
    (origin / "docs" / "git").symlink_to("../.git/hooks")
    assert link_outside_checkout(capture_changes(origin, base, exclude=[])) == ("docs/git", "../.git/hooks")
