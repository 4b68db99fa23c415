"""What every figure shares: sizes, scratch repositories and plans, the Copilot CLI, timed model and saves."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planeteer_action.plan.model import Plan
from planeteer_action.plan.store import (
    BackgroundPlanWriter,
)

REPO = Path(__file__).resolve().parents[1]
BENCH_REPOSITORY = "octo-org/planeteer-bench"
BENCH_BRANCH = "main"
MODEL = "bench-model"


@dataclass(frozen=True)
class Sizes:
    dag_tasks: int = 200
    dag_concurrency: int = 8
    dag_turn_seconds: float = 0.05
    dag_seed: int = 20261124
    overhead_tasks: int = 20
    overhead_concurrencies: tuple[int, ...] = (1, 4)
    overhead_model_delay: float = 0.05
    save_tasks: int = 2000
    save_runs: int = 50
    memory_tasks: int = 50
    memory_concurrency: int = 4
    recovery_sessions: tuple[int, ...] = (500, 5000)
    recovery_unfinished: int = 8
    sigint_tasks: int = 8
    sigint_repeats: int = 3
    worktree_files: int = 10_000
    worktree_tasks: int = 20


FULL = Sizes()
QUICK = Sizes(
    overhead_tasks=5,
    save_runs=10,
    memory_tasks=10,
    recovery_sessions=(500,),
    sigint_repeats=1,
    worktree_files=1_000,
    worktree_tasks=5,
)


# Shared helpers


def copilot_cli() -> Path:
    path = Path(os.environ.get("COPILOT_CLI_PATH") or REPO / ".tools/node_modules/.bin/copilot")
    if not path.exists():
        raise RuntimeError(f"the Copilot CLI is not installed at {path}: run `make setup` or set COPILOT_CLI_PATH")
    os.environ["COPILOT_CLI_PATH"] = str(path)  # what planeteer's runtime.find_copilot_cli reads
    return path


def planeteer_command() -> Path:
    sibling = Path(sys.executable).with_name("planeteer")
    if sibling.exists():
        return sibling
    found = shutil.which("planeteer")
    if found is None:
        raise RuntimeError("the `planeteer` command is not installed: run `make setup`")
    return Path(found)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANETEER_")}
    env.update(COPILOT_CLI_PATH=str(copilot_cli()), NO_COLOR="1", **extra)
    return env


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def make_repo(root: Path) -> Path:
    """A git repository on branch main with a GitHub remote, so sessions get repository/branch context."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "--quiet", "--initial-branch", BENCH_BRANCH)
    git(root, "remote", "add", "origin", f"https://github.com/{BENCH_REPOSITORY}.git")
    (root / "README.md").write_text("benchmark workspace\n")
    git(root, "add", "README.md")
    git(root, "-c", "user.email=bench@example.com", "-c", "user.name=Bench", "commit", "--quiet", "-m", "initial")
    return root


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"planeteer-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def task_dict(task_id: str, depends_on: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "title": f"Task {task_id}",
        "description": f"Do {task_id}.",
        "acceptanceCriteria": [f"{task_id} is done"],
        "dependsOn": list(depends_on),
        "status": "pending",
        **extra,
    }


def plan_dict(plan_id: str, tasks: list[dict[str, Any]], name: str = "Benchmark plan") -> dict[str, Any]:
    return {
        "id": plan_id,
        "name": name,
        "description": "A plan made by the benchmarks (bench/).",
        "createdAt": "2026-11-24T09:00:00.000Z",
        "updatedAt": "2026-11-24T09:00:00.000Z",
        "tasks": tasks,
    }


def random_dag(n: int, seed: int, max_deps: int = 3) -> list[dict[str, Any]]:
    """n tasks; each depends on 0..max_deps distinct earlier tasks, chosen uniformly (seeded)."""
    rng = random.Random(seed)
    width = len(str(n - 1))
    ids = [f"t{i:0{width}d}" for i in range(n)]
    tasks = []
    for i, task_id in enumerate(ids):
        deps = sorted(rng.sample(range(i), rng.randint(0, min(max_deps, i))))
        tasks.append(task_dict(task_id, [ids[d] for d in deps]))
    return tasks


def filesystem_of(path: Path) -> str:
    """The mount's filesystem type for `path` (fsync on tmpfs is free, on ext4 it is not)."""
    best, kind = "", "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and str(path.resolve()).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


class TimedSaves(BackgroundPlanWriter):
    """The saver `planeteer run` uses, timing how long each save keeps its task waiting."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.waits: list[float] = []

    async def save(self, plan: Plan, changed: Collection[str] | None = None) -> None:
        started = time.perf_counter()
        await super().save(plan, changed)
        self.waits.append(time.perf_counter() - started)
