"""A plan that cannot be saved: one line, exit 2 before the run starts, exit 1 with the plan whole mid-run.

The tests run as root, which ignores permission bits; the immutable attribute (`chattr +i`) stops root
too, so it stands in for a read-only folder or file. Where the file system does not support it, skip.
"""

from __future__ import annotations

import functools
import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from harness import make_workspace
from helpers import wait_for

from planeteer_action.cli.main import main
from planeteer_action.copilot.offline_model import OfflineModelServer
from planeteer_action.plan.store import load_plan


def _chattr(flag: str, path: Path) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True, capture_output=True)


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    probe = tmp_path / "probe"
    probe.touch()
    try:
        _chattr("+i", probe)
        _chattr("-i", probe)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("this file system has no immutable attribute (chattr +i)")
    made: list[Path] = []

    def make(path: Path) -> None:
        _chattr("+i", path)
        made.append(path)

    yield make
    for path in reversed(made):
        _chattr("-i", path)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("command", [["run", "--offline"], ["retry"]])
@pytest.mark.parametrize("what", ["folder", "file"])
def test_a_plan_that_cannot_be_saved_is_refused_before_anything_runs(
    plan_file: Path, immutable: Callable[[Path], None], command: list[str], what: str
) -> None:
    data = json.loads(plan_file.read_text())
    data["tasks"][0]["status"] = "failed"  # something `retry` would change
    data["skills"] = []  # the run looks for enabled skills in its working directory: not what this test is about
    plan_file.write_text(json.dumps(data, indent=2))
    target = plan_file.parent if what == "folder" else plan_file
    before = plan_file.read_bytes()
    immutable(target)
    result = CliRunner().invoke(main, [*command, str(plan_file), *(["setup"] if command == ["retry"] else [])])
    assert result.exit_code == 2, result.output
    assert _one_error_line(result.stderr) == (
        f"planeteer: error: {target} is not writable (permissions, a read-only file system or the immutable "
        "attribute), so the plan could not be saved: make it writable, then try again"
    )
    assert plan_file.read_bytes() == before
    assert sorted(p.name for p in plan_file.parent.iterdir()) == [plan_file.name]


@pytest.mark.integration
def test_a_folder_made_immutable_mid_run_stops_with_one_line_exit_1_and_a_whole_plan(
    tmp_path: Path, immutable: Callable[[Path], None]
) -> None:
    script: dict[str, list[dict[str, object]]] = {"quick": [{"text": "ok"}], "slow": [{"delay": 3, "text": "ok"}]}
    with OfflineModelServer(script=script) as model:
        ws = make_workspace(tmp_path, model, {"quick": [], "slow": []})
        events = tmp_path / "events.jsonl"
        with events.open("w") as stdout:
            process = subprocess.Popen(
                ws.args("run", "--json"),
                cwd=ws.repo,
                env=ws.env(),
                stdout=stdout,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
            try:
                wait_for(functools.partial(_done, events, "quick"), timeout=90, what="the quick task")
                immutable(ws.plan.parent)
                _, stderr = process.communicate(timeout=60)
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
    assert process.returncode == 1, stderr
    assert _one_error_line(stderr) == (
        f"planeteer: error: cannot save {ws.plan}: Operation not permitted: make the file and its folder "
        "writable, then run again to resume"
    )
    plan = load_plan(ws.plan)  # whole: the last save that landed
    assert plan.task("quick").status == "done"
    assert plan.task("slow").status == "in_progress"  # what the next run recovers


def _done(events: Path, task_id: str) -> bool:
    lines = events.read_text().split("\n")[:-1]  # whole lines only: the run may be writing the next
    return any(e["event"] == "task_done" and e["task_id"] == task_id for e in map(json.loads, lines))
