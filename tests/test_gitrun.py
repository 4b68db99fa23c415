"""The one git runner: git out of planeteer's process group, reading nothing of planeteer's stdin, failing to
start in one line that each caller raises as its own error."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import alive, wait_for

from planeteer_action import gitrun
from planeteer_action.checkpoints.workspace import WorkspaceChangesError, git_result
from planeteer_action.delivery.push import run_git as delivery_git
from planeteer_action.gitinfo import git as info_git
from planeteer_action.worktrees.git import GitFailed
from planeteer_action.worktrees.git import run_git as worktree_git

PACKAGE = Path(__file__).resolve().parents[1] / "planeteer_action"
EMPTY_BLOB = b"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\n"

# Planeteer as the runner runs it: a SIGINT is handled (noted in a file), not fatal, while a git it started
# through the runner waits, by way of a shell alias, for the test's go-ahead.
_PLANETEER = """
import signal, sys
from pathlib import Path
from planeteer_action.gitrun import run_git

folder = Path(sys.argv[1])
signal.signal(signal.SIGINT, lambda *_: (folder / "interrupted").touch())
done = run_git(folder, ["wait"], pins=("-c", "alias.wait=!" + sys.argv[2]))
print(done.returncode, done.stderr.decode().strip())
"""


def _waiting_git(folder: Path) -> str:
    """A shell alias that records its git's pid, then waits for a `go` file; git waits for it."""
    record = f"echo $PPID > '{folder}/pid.tmp' && mv '{folder}/pid.tmp' '{folder}/pid'"
    return f"{record}; until [ -e '{folder}/go' ]; do sleep 0.02; done"


def test_a_sigint_to_planeteers_process_group_never_reaches_its_git(tmp_path: Path) -> None:
    planeteer = subprocess.Popen(
        [sys.executable, "-c", _PLANETEER, str(tmp_path), _waiting_git(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal gives its foreground job
    )
    try:
        wait_for(lambda: (tmp_path / "pid").is_file(), timeout=30, what="git to start")
        git_pid = int((tmp_path / "pid").read_text())
        os.killpg(planeteer.pid, signal.SIGINT)  # what a Ctrl-C in the terminal does
        wait_for(lambda: (tmp_path / "interrupted").exists(), timeout=30, what="planeteer to get the SIGINT")
        assert alive(git_pid), "the SIGINT to planeteer's process group reached its git"
        (tmp_path / "go").touch()
        output, _ = planeteer.communicate(timeout=30)
    finally:
        (tmp_path / "go").touch()
        planeteer.kill()
        planeteer.wait()
    assert output.strip() == "0", f"git did not finish on its own: {output.strip()}"


def test_git_reads_nothing_of_planeteers_stdin_unless_given(tmp_path: Path) -> None:
    # pytest's own stdin may be a terminal: a git reading it would wait for a person.
    assert gitrun.run_git(tmp_path, ["hash-object", "--stdin"], timeout=30).stdout == EMPTY_BLOB
    given = gitrun.run_git(tmp_path, ["hash-object", "--stdin"], stdin=b"abc", timeout=30)
    assert given.stdout == b"f2ba8f84ab5c1bce84a7b441cb1959cfc7093b7f\n"


def test_pins_are_set_for_the_one_command(tmp_path: Path) -> None:
    done = gitrun.run_git(tmp_path, ["config", "--get", "planeteer.pinned"], pins=("-c", "planeteer.pinned=yes"))
    assert (done.returncode, done.stdout) == (0, b"yes\n")
    assert gitrun.run_git(tmp_path, ["config", "--get", "planeteer.pinned"]).returncode == 1


def test_git_not_starting_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(gitrun.GitNotRun, match=r"^git is not installed or not on PATH: install git$"):
        gitrun.run_git(tmp_path, ["status"], env={"PATH": str(tmp_path)})
    gone = tmp_path / "gone"
    with pytest.raises(gitrun.GitNotRun, match=rf"^git status could not start in {gone} \(.+\): check that the"):
        gitrun.run_git(gone, ["status"])


def test_a_git_that_overruns_its_time_is_stopped_in_one_line(tmp_path: Path) -> None:
    try:
        with pytest.raises(gitrun.GitNotRun, match=r"^git wait did not finish within 0.5 s in .+: check that no"):
            gitrun.run_git(tmp_path, ["wait"], pins=("-c", f"alias.wait=!{_waiting_git(tmp_path)}"), timeout=0.5)
    finally:
        (tmp_path / "go").touch()  # the alias's shell outlives the git the timeout killed


@pytest.mark.parametrize(
    ("stderr", "line"),
    [
        (b"hint: a hint first\nfatal: the reason\n", "fatal: the reason"),
        (b"\n  Counting objects\nremote: Permission denied\nfatal: unable to access\n", "remote: Permission denied"),
        (b"\n  only a note  \n", "only a note"),
        (b"", "no message from git"),
        (b"error: " + b"x" * 400, "error: " + "x" * 293),
        (b"fatal: bad \xff name", "fatal: bad \ufffd name"),
        (gitrun.text(b"fatal: bad \xff name"), "fatal: bad \ufffd name"),
    ],
)
def test_first_line_is_the_one_that_says_what_went_wrong(stderr: bytes | str, line: str) -> None:
    assert gitrun.first_line(stderr) == line


def test_text_keeps_a_path_that_is_not_utf8(tmp_path: Path) -> None:
    assert os.fsencode(gitrun.text(b"caf\xe9/file\n")) == b"caf\xe9/file\n"


def _worktrees(cwd: Path) -> object:
    with pytest.raises(GitFailed) as raised:
        worktree_git(cwd, "status")
    return str(raised.value)


def _checkpoints(cwd: Path) -> object:
    with pytest.raises(WorkspaceChangesError) as raised:
        git_result(cwd, ["status"], None)
    return str(raised.value)


def _delivery(cwd: Path) -> object:
    done = delivery_git(cwd, ["status"])
    return (done.returncode, done.stderr)


def _gitinfo(cwd: Path) -> object:
    return info_git(cwd, "status")


MISSING = "git is not installed or not on PATH: install git"


@pytest.mark.parametrize(
    ("caller", "expected"),
    [(_worktrees, MISSING), (_checkpoints, MISSING), (_delivery, (1, MISSING)), (_gitinfo, None)],
    ids=["worktrees", "checkpoints", "delivery", "gitinfo"],
)
def test_each_caller_turns_a_missing_git_into_its_own_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caller: Callable[[Path], object], expected: object
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert caller(tmp_path) == expected


def test_only_the_runner_starts_git() -> None:
    """A fifth way to run git would miss the next fix to how git is started, as three of four once did."""
    starters = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant)
        if node.elts[0].value == "git"
    ]
    assert starters and all(place.startswith("gitrun.py:") for place in starters), starters
