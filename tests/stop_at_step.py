"""Run a plan with worktree isolation and SIGKILL this process right after one step of finishing one task.

Used by test_isolation_recovery.py: `python stop_at_step.py PLAN WORKDIR COPILOT_HOME BASE_URL TASK STEP`.
The seam is the executor's `on_finish_step` hook, so the kill lands exactly between two steps, every time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from planeteer_action.runner import ProviderSettings, RunConfig, run_plan


def main(plan: str, workdir: str, home: str, base_url: str, task: str, step: str) -> None:
    def stop(task_id: str, finished: str) -> None:
        if (task_id, finished) == (task, step):
            os.kill(os.getpid(), signal.SIGKILL)

    config = RunConfig(
        plan_path=Path(plan),
        working_directory=Path(workdir),
        model="scripted",
        provider=ProviderSettings(base_url, api_key="unused-key"),
        copilot_home=Path(home),
        on_interrupted="resume",
        isolation="worktree",
        on_finish_step=stop,
    )
    asyncio.run(run_plan(config, []))


if __name__ == "__main__":
    main(*sys.argv[1:7])
