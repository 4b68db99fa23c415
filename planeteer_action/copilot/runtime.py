"""Finding the Copilot CLI, launching it out of reach of the terminal's Ctrl-C, and cleaning up after it.

Why the launcher: the SDK starts the CLI in the host's process group, so a Ctrl-C in the terminal reaches
the CLI too, which then refuses the host's clean `abort()`. The launcher puts the CLI in its own session.

Why the tag: the CLI runs each bash tool command in a session of its own, and a command left running in the
background is re-parented to init when its shell ends, so neither the process tree nor the CLI's session
id finds it later. Every process the CLI starts inherits its environment, so a unique value in it
(`PROCESS_TAG_ENV`) finds them all.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from planeteer_action.engine.agent import AgentError

PINNED_CLI_VERSION = "1.0.102"
INSTALL_COMMAND = f"npm install -g @github/copilot@{PINNED_CLI_VERSION}"
PROCESS_TAG_ENV = "PLANETEER_RUNTIME_TAG"

_VERSION = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?")
_LAUNCHER_NAME = "copilot-detached"


def find_copilot_cli() -> Path:
    """The Copilot CLI to run: $COPILOT_CLI_PATH, else `copilot` on PATH, else the SDK's own download."""
    configured = os.environ.get("COPILOT_CLI_PATH")
    if configured:
        path = Path(configured).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise AgentError(
                f"COPILOT_CLI_PATH={configured} is not an executable file; point it at the copilot binary"
                f" or unset it and run: {INSTALL_COMMAND}"
            )
        return path
    on_path = shutil.which("copilot")
    if on_path:
        return Path(on_path)
    try:
        from copilot._cli_download import ensure_runtime_wrapper

        return Path(ensure_runtime_wrapper())
    except Exception as error:
        raise AgentError(
            f"Copilot CLI not found (not in COPILOT_CLI_PATH, not on PATH, and the SDK could not download it:"
            f" {_first_line(error)}); install it with: {INSTALL_COMMAND}"
        ) from None


def default_copilot_home() -> Path:
    """Where the Copilot CLI keeps its sessions and login when none is given: $COPILOT_HOME, else ~/.copilot."""
    return Path(os.environ.get("COPILOT_HOME") or Path.home() / ".copilot")


def cli_version(path: Path) -> str | None:
    """The version the CLI reports (e.g. "1.0.102"), or None if it cannot be run or says nothing usable."""
    try:
        done = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(done.stdout)
    return match.group(0) if done.returncode == 0 and match else None


def write_detached_launcher(cli: Path, directory: Path) -> Path:
    """Write an executable into `directory` that runs `cli` with its arguments in a new session.

    It calls setsid() and exec()s in place (no fork), so the process the SDK spawned and waits for is the
    CLI itself. `directory` should be private to the caller (e.g. from tempfile.mkdtemp).
    """
    launcher = directory / _LAUNCHER_NAME
    script = "import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])"
    launcher.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -I -S -c {shlex.quote(script)} {shlex.quote(str(cli))} "$@"\n',
        encoding="utf-8",
    )
    launcher.chmod(0o700)
    return launcher


def tagged_environment(tag: str) -> dict[str, str]:
    """The environment for a CLI whose every descendant must be findable by `tag`."""
    return {**os.environ, PROCESS_TAG_ENV: tag}


def tagged_processes(tag: str) -> list[int]:
    """Live processes (not zombies) whose environment carries `tag`; never this process."""
    marker = f"{PROCESS_TAG_ENV}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_tagged_processes(tag: str, grace: float = 0.5, wait: float = 1.0) -> list[int]:
    """End every process carrying `tag`: SIGTERM, then SIGKILL for those still there after `grace` s.

    SIGTERM first lets shells run their exit traps (a SIGKILLed `pyenv rehash` leaves its lock file behind
    and stalls every later login shell for a minute). Returns the pids that were signalled.
    """
    signalled = _signal_all(tagged_processes(tag), signal.SIGTERM)
    if signalled and not _wait_gone(tag, grace):
        _signal_all(tagged_processes(tag), signal.SIGKILL)
        _wait_gone(tag, wait)
    return signalled


def _signal_all(pids: list[int], signum: int) -> list[int]:
    sent = []
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)
            sent.append(pid)
    return sent


def _wait_gone(tag: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while tagged_processes(tag):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
