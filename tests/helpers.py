"""What every kind of test needs, in one copy: running git, waiting for a condition, looking at processes.

The process helpers read /proc, so they see any process of the machine; tests narrow them to their own
processes with `processes_with_env` (a marker every process they start inherits), never by name, so that
two test suites running on one machine cannot mistake each other's processes for their own.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

# Commits work in a repository that has no identity configured, and never ask for a signing key.
GIT_IDENTITY = ("-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false")


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd`; its output without the trailing newline. A failure names the command and git's error."""
    done = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    """Poll `condition` every 50 ms (at least once) until it holds; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Running: neither gone nor a zombie waiting for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def live_processes() -> list[int]:
    """Every running process of the machine."""
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit() and alive(int(entry.name))]


def processes_with_env(required: Mapping[str, str | None]) -> list[int]:
    """Processes whose environment has every name in `required`, with that value (None: any value).

    A zombie has no environment left, so only running processes are found.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone since the listing, or not ours to read
        names = {name: value for name, _, value in (item.partition(b"=") for item in environ if item)}
        if all(
            name.encode() in names and (value is None or names[name.encode()] == value.encode())
            for name, value in required.items()
        ):
            found.append(int(entry.name))
    return found


def environment(pid: int) -> dict[str, str]:
    """A process's initial environment, or {} when it is gone or not ours to read."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def argv(pid: int) -> list[str]:
    """A process's command line, or [] when it has exited since it was listed (shells come and go)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]] if raw else []


def session_of(pid: int) -> int | None:
    """The process's session id (what a terminal's Ctrl-C and a session leader's exit reach), or None if gone."""
    try:
        return os.getsid(pid)
    except OSError:
        return None
