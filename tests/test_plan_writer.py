"""The background plan writer: it outlives cancelled saves, a forced save is bounded, failures are one line."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from pathlib import Path

import pytest

import planeteer_action.plan.store as store
from planeteer_action.errors import PlanSaveFailed
from planeteer_action.plan.model import Plan, Task
from planeteer_action.plan.store import BackgroundPlanWriter, load_plan, plan_json, save_plan

pytestmark = pytest.mark.timing


def _big_plan(path: Path, tasks: int = 2000) -> Plan:
    plan = Plan(id="p", name="n", tasks=[Task(id=f"t{i}", title=f"task {i}") for i in range(tasks)])
    save_plan(plan, path)
    return plan


def test_saves_cancelled_at_any_instant_never_stop_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    plan = _big_plan(path)

    async def scenario() -> None:
        saver = BackgroundPlanWriter(path)
        try:
            for i in range(300):
                plan.tasks[i % len(plan.tasks)].agent_result = f"result {i}"
                save = asyncio.ensure_future(saver.save(plan, {plan.tasks[i % len(plan.tasks)].id}))
                # Cancel before the write is taken, while it is in flight, and after: a few ms span a write.
                await asyncio.sleep((i % 15) * 0.0004)
                save.cancel()
                if i % 10 == 0:  # several saves pending at once, some cancelled, some not
                    await asyncio.wait_for(saver.save(plan, None), timeout=10)
            plan.tasks[0].agent_result = "the last word"
            await asyncio.wait_for(saver.save(plan, {plan.tasks[0].id}), timeout=10)
        finally:
            saver.close()

    asyncio.run(scenario())
    assert path.read_bytes() == plan_json(plan)
    assert load_plan(path).tasks[0].agent_result == "the last word"


def test_a_forced_save_gives_up_after_a_bounded_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plan.json"
    plan = _big_plan(path, tasks=3)
    before = path.read_bytes()
    disk_free = threading.Event()
    real_write = store.write_atomic

    def stuck_disk(target: Path, data: bytes, durable: bool = True) -> None:
        disk_free.wait()
        real_write(target, data, durable)

    monkeypatch.setattr(store, "write_atomic", stuck_disk)
    saver = BackgroundPlanWriter(path)
    plan.tasks[0].status = "interrupted"
    started = time.monotonic()
    with pytest.raises(PlanSaveFailed, match=r"could not save .*plan\.json within 0\.5 s before exiting"):
        saver.save_blocking(plan, None)
    assert time.monotonic() - started < 2
    assert path.read_bytes() == before
    disk_free.set()
    saver.close()
    assert load_plan(path).tasks[0].status == "interrupted"


def test_a_failed_write_is_one_line_and_leaves_the_plan_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plan.json"
    plan = _big_plan(path, tasks=3)
    before = path.read_bytes()

    def refused(src: str, dst: str) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), dst)

    monkeypatch.setattr(os, "replace", refused)  # the rename, as an immutable folder refuses it

    async def scenario() -> None:
        saver = BackgroundPlanWriter(path)
        try:
            plan.tasks[0].status = "done"
            with pytest.raises(PlanSaveFailed) as raised:
                await saver.save(plan, {"t0"})
            assert "\n" not in str(raised.value)
            assert str(raised.value) == (
                f"cannot save {path}: Operation not permitted: make the file and its folder writable, "
                "then run again to resume"
            )
            assert path.read_bytes() == before
            monkeypatch.undo()
            await asyncio.wait_for(saver.save(plan, {"t0"}), timeout=10)  # the writer lives on
        finally:
            saver.close()

    asyncio.run(scenario())
    assert load_plan(path).tasks[0].status == "done"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
