"""The plan file: exact round trips, kept unknown fields, atomic saves, the Markdown view, the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planeteer_action.errors import PlanLocked, PlanUnwritable
from planeteer_action.plan.lock import PlanLock
from planeteer_action.plan.model import Attempt, Plan
from planeteer_action.plan.store import load_plan, markdown_path, plan_json, save_plan


def test_typescript_plan_round_trips_byte_for_byte(plan_file: Path) -> None:
    original = plan_file.read_bytes()
    save_plan(load_plan(plan_file), plan_file)
    assert plan_file.read_bytes() == original


def test_unknown_fields_survive_execution_changes(plan_file: Path) -> None:
    plan = load_plan(plan_file)
    task = plan.task("e2e")
    task.status = "done"
    task.session_id = "planeteer-00000000-e2e-a1"
    task.attempts.append(Attempt(number=1, session_id=task.session_id, reason="first start", started_at="t"))
    save_plan(plan, plan_file)
    saved = json.loads(plan_file.read_text())
    e2e = saved["tasks"][3]
    assert e2e["estimate"] == {"hours": 3, "confidence": 0.5, "big": 1e21, "small": 1.5e-7}
    assert list(e2e)[:7] == [
        "id",
        "title",
        "description",
        "acceptanceCriteria",
        "dependsOn",
        "status",
        "estimate",
    ]
    assert e2e["sessionId"] == "planeteer-00000000-e2e-a1"
    assert e2e["attempts"][0]["sessionId"] == "planeteer-00000000-e2e-a1"
    assert saved["skills"] == [{"name": "python", "enabled": True}, {"name": "web", "enabled": False}]
    assert saved["tasks"][2]["agentResult"] == "earlier notes"


def test_running_is_read_as_in_progress(plan_file: Path) -> None:
    data = json.loads(plan_file.read_text())
    data["tasks"][0]["status"] = "running"
    plan_file.write_text(json.dumps(data))
    assert load_plan(plan_file).task("setup").status == "in_progress"


def test_markdown_view_is_written_beside_the_plan(plan_file: Path) -> None:
    plan = load_plan(plan_file)
    plan.task("setup").status = "done"
    plan.task("setup").session_id = "planeteer-abc-setup-a1"
    save_plan(plan, plan_file)
    text = markdown_path(plan_file).read_text()
    assert text.startswith("# Todo web app\n")
    assert "● **setup** — Project setup" in text
    assert "○ **e2e** — End-to-end tests (also ← ui)" in text
    assert "**Session:** `planeteer-abc-setup-a1`" in text
    assert "- [x] pyproject.toml exists" in text


def test_markdown_of_a_long_chain_does_not_recurse(tmp_path: Path) -> None:
    tasks = [{"id": f"t{i}", "title": "x", "dependsOn": [f"t{i - 1}"] if i else []} for i in range(3000)]
    path = tmp_path / "chain.json"
    path.write_text(json.dumps({"id": "c", "name": "chain", "tasks": tasks}))
    save_plan(load_plan(path), path)
    assert markdown_path(path).read_text().count("**t") == 3000


_SAVER = """
import sys, json
from pathlib import Path
from planeteer_action.plan.model import Plan
from planeteer_action.plan.store import save_plan
path = Path(sys.argv[1])
tasks = [{"id": f"t{i}", "title": "x" * 200, "dependsOn": []} for i in range(2000)]
plan = Plan.model_validate({"id": "big", "name": "big", "tasks": tasks})
print("ready", flush=True)
n = 0
while True:
    n += 1
    plan.tasks[n % 2000].agent_result = f"result {n}" * 50
    save_plan(plan, path)
"""


def test_a_kill_at_any_instant_leaves_a_whole_plan(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"id": "big", "name": "big", "tasks": [{"id": "t0", "title": "x"}]}))
    for i in range(12):
        child = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE)
        assert child.stdout is not None
        child.stdout.readline()
        time.sleep(0.05 + 0.037 * i)
        child.send_signal(signal.SIGKILL)
        child.wait()
        plan = load_plan(path)  # parses and validates: never torn
        assert plan.id == "big"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 12  # temp files of killed saves may remain; the plan itself is whole


def test_save_keeps_the_file_mode(plan_file: Path) -> None:
    os.chmod(plan_file, 0o640)
    save_plan(load_plan(plan_file), plan_file)
    assert plan_file.stat().st_mode & 0o777 == 0o640


_HOLDER = """
import sys, time
from pathlib import Path
from planeteer_action.plan.lock import PlanLock
lock = PlanLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def _hold_lock(plan: Path) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(plan)], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline().strip() == b"locked"
    return child


def test_second_owner_is_refused_with_the_owner_named(plan_file: Path) -> None:
    child = _hold_lock(plan_file)
    try:
        with pytest.raises(PlanLocked, match=rf"pid {child.pid} on \S+"):
            PlanLock(plan_file).acquire()
    finally:
        child.kill()
        child.wait()


def test_lock_of_a_dead_owner_is_taken_over(plan_file: Path) -> None:
    child = _hold_lock(plan_file)
    child.send_signal(signal.SIGKILL)
    child.wait()
    lock = PlanLock(plan_file)
    lock.acquire()
    try:
        assert lock.taken_over is not None and lock.taken_over.pid == child.pid
    finally:
        lock.release()
    assert not lock.path.exists()


def test_new_plan_writes_only_what_it_has() -> None:
    plan = Plan(id="p", name="n", tasks=[])
    assert json.loads(plan_json(plan)) == {"id": "p", "name": "n", "tasks": []}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    planeteer = Path(sys.executable).with_name("planeteer")
    return subprocess.run([str(planeteer), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _failed_plan(plan_file: Path) -> None:
    data = json.loads(plan_file.read_text())
    data["tasks"][0]["status"] = "failed"
    plan_file.write_text(json.dumps(data, indent=2))


@pytest.mark.parametrize("dangling", [False, True])
def test_a_lock_path_that_is_a_symlink_is_refused_and_its_target_untouched(
    plan_file: Path, tmp_path: Path, dangling: bool
) -> None:
    _failed_plan(plan_file)
    victim = tmp_path / "victim"
    if not dangling:
        victim.write_text("precious\n")
    (plan_file.parent / (plan_file.name + ".lock")).symlink_to(victim)
    plan_before = plan_file.read_bytes()
    result = _cli("retry", str(plan_file), "setup")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"planeteer: error: {plan_file}.lock is a symbolic link, so planeteer will not write its lock through "
        "it: delete the link, then try again"
    ]
    assert victim.exists() != dangling and (dangling or victim.read_text() == "precious\n")
    assert plan_file.read_bytes() == plan_before


def test_a_lock_file_hard_linked_elsewhere_is_refused_and_left_alone(plan_file: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.link(victim, plan_file.parent / (plan_file.name + ".lock"))
    with pytest.raises(PlanUnwritable, match=r"\.lock is not a lock file planeteer made .*: delete it, then try"):
        PlanLock(plan_file).acquire()
    assert victim.read_text() == "precious\n"


def test_a_symlinked_plan_is_saved_to_its_target_and_stays_a_link(plan_file: Path, tmp_path: Path) -> None:
    _failed_plan(plan_file)
    link = tmp_path / "elsewhere" / "link.json"
    link.parent.mkdir()
    link.symlink_to(plan_file)
    result = _cli("retry", str(link), "setup")
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and link.resolve() == plan_file
    assert load_plan(plan_file).task("setup").status == "pending"
    assert markdown_path(plan_file).exists() and not markdown_path(link).exists()
    # Every path to the plan shares the lock beside the real file.
    assert PlanLock(link).path == PlanLock(plan_file).path == plan_file.with_name(plan_file.name + ".lock")
