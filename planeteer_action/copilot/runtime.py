"""Finding the Copilot CLI, launching it out of reach of the terminal's Ctrl-C and of planeteer's secrets,
and cleaning up after it.

Why the launcher: the SDK starts the CLI in the host's process group, so a Ctrl-C in the terminal reaches
the CLI too, which then refuses the host's clean `abort()`. The launcher puts the CLI in its own session.

Why the tag: the CLI runs each bash tool command in a session of its own, and a command left running in the
background is re-parented to init when its shell ends, so neither the process tree nor the CLI's session
id finds it later. Every process the CLI starts inherits its environment, so a unique value in it
(`PROCESS_TAG_ENV`) finds them all. A run's tag is derived from its plan file, so the next run of that plan
can stop what a killed run's agents left running.

Why the environment: every agent's shell inherits the CLI's environment, and any process of the same user
can read another's initial environment in /proc/<pid>/environ. So the CLI gets planeteer's environment
without its secrets (the BYOK key travels in the session config instead), the Copilot token only as
COPILOT_GITHUB_TOKEN (the one variable the CLI keeps from its shells), and planeteer hides its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from planeteer_action.engine.agent import AgentError

PINNED_CLI_VERSION = "1.0.102"
INSTALL_COMMAND = f"npm install -g @github/copilot@{PINNED_CLI_VERSION}"
PROCESS_TAG_ENV = "PLANETEER_RUNTIME_TAG"
COPILOT_TOKEN_VARIABLES = ("COPILOT_GITHUB_TOKEN", "GH_TOKEN", "GITHUB_TOKEN")
"""Where the Copilot CLI looks for its token, first first."""
SECRET_VARIABLES = (
    *COPILOT_TOKEN_VARIABLES,
    "COPILOT_SDK_AUTH_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
    "PLANETEER_PROVIDER_API_KEY",
)
SECRET_PREFIXES = ("INPUT_", "ACTIONS_")
"""A step's inputs (`state-key`, ...) and the runner's own credentials (`ACTIONS_RUNTIME_TOKEN`, ...)."""

# What the CLI and every shell need, never withheld even when an MCP configuration reads one (`${HOME}`).
_SYSTEM_VARIABLES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TMPDIR", "TERM", "PWD"})
_VERSION = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?")
_LAUNCHER_NAME = "copilot-detached"
_PR_SET_DUMPABLE = 4
_ENV_START_FIELD = 47
"""/proc/<pid>/stat's env_start (field 50, counted after the command name's closing parenthesis)."""


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


def is_secret_variable(name: str) -> bool:
    return name in SECRET_VARIABLES or name.startswith(SECRET_PREFIXES)


def kept_from_agents(name: str, withheld: Collection[str] = ()) -> bool:
    """Planeteer's secrets, and the variables the run named as secret (those an MCP configuration reads through
    `${VAR}`: its servers get the values from their configuration), unless the system cannot do without them."""
    return is_secret_variable(name) or (name in withheld and name not in _SYSTEM_VARIABLES)


def copilot_token(explicit: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The token the CLI authenticates with: the one given, else the first the CLI itself would read."""
    env = os.environ if env is None else env
    return explicit or next((env[name] for name in COPILOT_TOKEN_VARIABLES if env.get(name)), None)


def agent_environment(tag: str, github_token: str | None, withheld: Collection[str] = ()) -> dict[str, str]:
    """The CLI's environment, which every agent command inherits: planeteer's, less its secrets, tagged.

    The Copilot token goes in as COPILOT_GITHUB_TOKEN, which the CLI reads and removes from its shells'
    environment (the SDK's own `github_token` option would put it in COPILOT_SDK_AUTH_TOKEN, which it keeps).
    """
    env = {name: value for name, value in os.environ.items() if not kept_from_agents(name, withheld)}
    token = copilot_token(github_token)
    if token:
        env["COPILOT_GITHUB_TOKEN"] = token
    env[PROCESS_TAG_ENV] = tag
    return env


def hide_own_secrets(withheld: Collection[str] = ()) -> None:
    """Make this process's secrets unreadable by the agents it is about to start (same user, so /proc).

    Non-dumpable: /proc/<pid>/environ and /proc/<pid>/mem become unreadable to other processes of the user.
    That does not stop a reader with CAP_SYS_PTRACE (root in a container), so the secret values in the
    initial environment block that /proc/<pid>/environ shows are also overwritten in place. os.environ is
    a copy made at start, so planeteer itself still reads them.
    """
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    with contextlib.suppress(OSError, ValueError, IndexError):
        _blank_initial_environment(lambda name: kept_from_agents(name, withheld))


def _blank_initial_environment(hide: Callable[[str], bool]) -> None:
    """Overwrite with 'x' the values of the variables `hide` picks in this process's initial environment."""
    stat = Path("/proc/self/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    start, end = int(fields[_ENV_START_FIELD]), int(fields[_ENV_START_FIELD + 1])
    with open("/proc/self/mem", "r+b", buffering=0) as memory:
        memory.seek(start)
        block = memory.read(end - start)
        offset = 0
        for entry in block.split(b"\0"):
            name, equals, value = entry.partition(b"=")
            if equals and value and hide(name.decode("utf-8", "replace")):
                memory.seek(start + offset + len(name) + 1)
                memory.write(b"x" * len(value))
            offset += len(entry) + 1


def plan_process_tag(plan_path: Path) -> str:
    """The tag of the agents of runs of this plan file: the same for every run of it, and only of it."""
    digest = hashlib.sha256(str(plan_path.resolve()).encode("utf-8")).hexdigest()[:32]
    return f"plan-{digest}"


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
