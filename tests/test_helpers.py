"""The shared test helpers do what the tests rely on: a helper that sees too little would hide leaks."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import alive, argv, git, live_processes, processes_with_env, session_of, wait_for

MARK = "HELPERS_TEST_MARK"


@pytest.fixture
def sleeper() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A `sleep` in a session of its own, carrying a mark of this test alone."""
    mark = uuid.uuid4().hex
    process = subprocess.Popen(["sleep", "30"], env={**os.environ, MARK: mark}, start_new_session=True)
    comm = Path(f"/proc/{process.pid}/comm")
    try:
        wait_for(lambda: comm.read_text() == "sleep\n", timeout=10, what="the child to exec sleep")
        yield process, mark
    finally:
        process.kill()
        process.wait()


def test_processes_are_found_by_their_environment_and_nothing_else(
    sleeper: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, mark = sleeper
    assert processes_with_env({MARK: mark}) == [process.pid]
    assert process.pid in processes_with_env({MARK: None})
    assert processes_with_env({MARK: "another-mark"}) == []
    assert processes_with_env({MARK: mark, "NOT_SET_ANYWHERE_" + mark: None}) == []


def test_a_process_is_described_by_its_argv_and_session(sleeper: tuple[subprocess.Popen[bytes], str]) -> None:
    process, _ = sleeper
    assert argv(process.pid) == ["sleep", "30"]
    assert session_of(process.pid) == process.pid  # start_new_session made it a session leader
    assert alive(process.pid) and process.pid in live_processes()


def test_a_zombie_counts_as_gone(sleeper: tuple[subprocess.Popen[bytes], str]) -> None:
    process, mark = sleeper
    process.kill()  # not reaped yet: a zombie until wait()
    wait_for(lambda: not alive(process.pid), timeout=10, what="the sleep to die")
    assert Path(f"/proc/{process.pid}").exists()
    assert process.pid not in live_processes() and processes_with_env({MARK: mark}) == []
    process.wait()
    assert argv(process.pid) == [] and session_of(process.pid) is None


def test_wait_for_returns_once_the_condition_holds_and_names_what_it_waited_for() -> None:
    deadline = time.monotonic() + 0.2
    wait_for(lambda: time.monotonic() > deadline, timeout=5)
    with pytest.raises(AssertionError, match=r"timed out after 0.1 s waiting for the moon"):
        wait_for(lambda: False, timeout=0.1, what="the moon")


def test_git_commits_without_a_configured_identity_and_reports_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "first")
    assert git(tmp_path, "log", "--format=%an <%ae>|%s") == "Test <test@example.com>|first"
    with pytest.raises(AssertionError, match=r"git checkout nowhere failed in .*: error: pathspec 'nowhere'"):
        git(tmp_path, "checkout", "nowhere")
