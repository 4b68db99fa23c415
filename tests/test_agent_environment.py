"""What an agent can reach, on the real Copilot CLI driven by `planeteer run` and a scripted local model.

An agent's command dumps its environment and every /proc/<pid>/environ it can read (this suite runs as
root with CAP_SYS_PTRACE, so it reads every process's, non-dumpable or not); none of planeteer's secrets
may be there, nor in the session transcripts. And what a killed run's agents left running is stopped by the
next run of the same plan, and nothing else is.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import RUNTIME_TAG, SUITE_ENV, Workspace, make_workspace, suite_processes
from helpers import argv, environment, processes_with_env, wait_for

from planeteer_action.copilot.offline_model import OfflineModelServer
from planeteer_action.worktrees.names import integration_branch, worktree_path

pytestmark = pytest.mark.integration

DUMP_FILE = "env-dump.txt"
# Every variable printed by `env`, then one section per readable /proc/<pid>/environ: "== <pid> <cmdline>".
DUMP_COMMAND = (
    f"env; {{ echo '== env'; env; for d in /proc/[0-9]*; do"
    f" e=$(tr '\\0' '\\n' < $d/environ 2>/dev/null) || continue;"
    f" echo \"== ${{d#/proc/}} $(tr '\\0' ' ' < $d/cmdline 2>/dev/null | cut -c1-200)\"; echo \"$e\";"
    f" done; }} > {DUMP_FILE} 2>/dev/null"
)
PROBE = "PLANETEER_TEST_PROBE=visible-7d1e"
CANARIES = {
    "PLANETEER_PROVIDER_API_KEY": "canary-provider-key-5a1f93",
    "INPUT_STATE-KEY": "canary-state-key-0b7e41",
    "INPUT_PROVIDER-API-KEY": "canary-input-provider-8c2d77",
    "ACTIONS_RUNTIME_TOKEN": "canary-runtime-token-3f6a02",
    "GH_ENTERPRISE_TOKEN": "canary-ghe-token-91d4c8",
}
COPILOT_TOKEN = "canary-copilot-token-6e0b5d"
# A secret only an MCP server should get, through `${MCP_CANARY_TOKEN}` in the run's MCP configuration.
MCP_CANARY = ("MCP_CANARY_TOKEN", "canary-mcp-token-2c9e71")
MCP_SERVER = Path(__file__).with_name("mcp_stdio_server.py")


def dump_sections(text: str) -> dict[str, str]:
    """The dump's sections by header ("== env", "== <pid> <cmdline>"), each its lines joined."""
    sections: dict[str, list[str]] = {}
    current = "(before)"
    for line in text.splitlines():
        if line.startswith("== "):
            current = line[3:]
            sections.setdefault(current, [])
        else:
            sections.setdefault(current, []).append(line)
    return {header: "\n".join(lines) for header, lines in sections.items()}


def test_no_secret_of_planeteer_reaches_an_agent_its_transcript_or_proc(tmp_path: Path) -> None:
    with OfflineModelServer(script={"dump": [{"bash": DUMP_COMMAND}, {"text": "dumped"}]}) as model:
        ws = make_workspace(tmp_path, model, {"dump": []})
        env = {**ws.env(), **CANARIES, "GITHUB_TOKEN": COPILOT_TOKEN, PROBE.split("=")[0]: PROBE.split("=")[1]}
        env[MCP_CANARY[0]] = MCP_CANARY[1]
        server = {"command": sys.executable, "args": [str(MCP_SERVER)], "env": {"TINY_TOKEN": "${MCP_CANARY_TOKEN}"}}
        mcp_config = tmp_path / "mcp.json"
        mcp_config.write_text(json.dumps({"mcpServers": {"tiny": server}}))
        process = subprocess.Popen(
            ws.args("run", "--mcp-config", str(mcp_config)),
            cwd=ws.repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    dump = subprocess.run(
        ["git", "show", f"{integration_branch(ws.load().id)}:{DUMP_FILE}"], cwd=ws.repo, capture_output=True, check=True
    )  # the task's work, merged into the integration branch
    sections = dump_sections(dump.stdout.decode(errors="replace"))

    # The control: the agent did see its environment, and read planeteer's own /proc environ.
    assert PROBE in sections["env"]
    own = [header for header in sections if header.split(" ", 1)[0] == str(process.pid)]
    assert own and PROBE in sections[own[0]], "planeteer's own environ was not in the dump"

    everything = "\n".join([out, err, *sections.values()])
    for path in (ws.home / "session-state").rglob("*"):
        if path.is_file():
            everything += path.read_text(errors="replace")
    for name, value in CANARIES.items():
        assert value not in everything, f"{name} reached an agent, its transcript or the output"
    # The MCP server holds its secret (an agent reading /proc as root finds it there, as README says); nothing
    # else does: not the agent's environment, planeteer's, the CLI's, the output or the transcripts.
    holders = [header for header, text in sections.items() if MCP_CANARY[1] in text]
    assert all(str(MCP_SERVER) in header for header in holders), holders
    assert MCP_CANARY[1] not in "\n".join([out, err, sections["env"]])

    # The Copilot token reaches the CLI (it needs it), as COPILOT_GITHUB_TOKEN, which the CLI keeps from
    # its shells: an agent finds it only by reading the CLI's own /proc environ.
    assert COPILOT_TOKEN not in sections["env"]
    holders = [header for header, text in sections.items() if COPILOT_TOKEN in text]
    assert holders and all("copilot" in header for header in holders), holders
    assert all(f"COPILOT_GITHUB_TOKEN={COPILOT_TOKEN}" in sections[header] for header in holders)


# Leftovers of a killed run ---------------------------------------------------------------------------------


def sleepers() -> list[int]:
    """This suite's live `sleep 600` processes."""
    return [pid for pid in suite_processes() if argv(pid) == ["sleep", "600"]]


@pytest.fixture
def decoys(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def test_the_next_run_stops_what_a_killed_runs_agents_left_and_nothing_else(
    tmp_path: Path, decoys: list[subprocess.Popen[bytes]]
) -> None:
    script: dict[str, list[dict[str, object]]] = {
        "bg": [{"bash": "sleep 600 >/dev/null 2>&1 & echo started"}, {"delay": 60, "text": "never sent"}]
    }
    with OfflineModelServer(script=script) as model:
        ws: Workspace = make_workspace(tmp_path, model, {"bg": []})
        # Not this plan's: another tag, and no tag at all, both working in the same folder.
        for tag in ("plan-0123456789abcdef0123456789abcdef", None):
            env = {k: v for k, v in os.environ.items() if k != RUNTIME_TAG}
            if tag:
                env[RUNTIME_TAG] = tag
            decoys.append(subprocess.Popen(["sleep", "600"], cwd=ws.repo, env=env))
        try:
            first = ws.start("run")
            wait_for(lambda: len(sleepers()) == 3, 60, "the agent's background sleep")
            (left,) = [pid for pid in sleepers() if pid not in {d.pid for d in decoys}]
            os.kill(first.pid, signal.SIGKILL)
            first.communicate(timeout=30)
            # The CLI notices its host is gone and stops; the background command does not.
            wait_for(lambda: set(tagged(left)) == {left}, 15, "the Copilot CLI to stop")
            assert os.readlink(f"/proc/{left}/cwd") == str(worktree_path(ws.repo / ".git", ws.load().id, "bg"))

            second = ws.run("run", "--on-interrupted", "resume")
            assert second.returncode == 0, second.stderr
            assert left not in sleepers(), "the killed run's background command is still running"
            assert all(decoy.poll() is None for decoy in decoys), "a process not of this plan was stopped"
        finally:
            for pid in sleepers():
                if pid not in {d.pid for d in decoys}:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)


def tagged(pid: int) -> list[int]:
    """This suite's processes carrying the same runtime tag as `pid`."""
    tag = environment(pid).get(RUNTIME_TAG)
    return processes_with_env({SUITE_ENV: os.environ[SUITE_ENV], RUNTIME_TAG: tag}) if tag is not None else []
