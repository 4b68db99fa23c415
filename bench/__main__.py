"""Planeteer's performance figures, measured on this machine, printed as one table with their targets.

    .venv/bin/python -m bench            # the full set (= make bench; a few minutes on 2 cores)
    .venv/bin/python -m bench --quick    # a smaller smoke version (under a minute)
    .venv/bin/python -m bench --only 3 5 # some figures only

Figures (see bench/README.md for what each one means and what it includes):
  1. scheduler makespan over an honest lower bound (in-memory agent with a fixed answer time)
  2. per-task overhead on the real Copilot CLI over the model's own time
  3. cost of one save of a 2,000-task plan
  4. peak memory of the planeteer process itself (and, for context, the CLI's)
  5. recovery inspection time with 500 and 5,000 sessions in the Copilot home
  6. time from SIGINT to exit with 8 tasks inside a long tool call
  7. what a task's git worktree costs on a 10,000-file repository (create, commit, merge, remove; disk)
  8. the action's checkpoint traffic at the local GitHub services: bytes, artifacts, restore, latency

Figures 2, 4, 5 and 6 run the real Copilot CLI (COPILOT_CLI_PATH, else .tools/node_modules/.bin/copilot) against
the local OfflineModelServer on 127.0.0.1; nothing leaves the machine. This is a measurement, not a test: it
exits 0 when every figure was measured, whether or not it met its target, and 1 when a figure could not be.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.checkpoints import figure_checkpoints
from bench.common import FULL, QUICK, Sizes, copilot_cli, filesystem_of
from bench.memory import figure_memory
from bench.overhead import figure_overhead
from bench.recovery import figure_recovery
from bench.report import Results, print_table
from bench.saves import figure_save
from bench.scheduler import figure_scheduler
from bench.sigint import figure_sigint
from bench.worktrees import figure_worktrees
from planeteer_action.copilot.runtime import cli_version

FIGURES: dict[str, tuple[str, Callable[[Sizes, Results], None]]] = {
    "1": ("scheduler makespan", figure_scheduler),
    "2": ("per-task overhead on the real CLI", figure_overhead),
    "3": ("one save of a big plan", figure_save),
    "4": ("peak memory", figure_memory),
    "5": ("recovery inspection", figure_recovery),
    "6": ("SIGINT to exit", figure_sigint),
    "7": ("worktree cost per task", figure_worktrees),
    "8": ("checkpoint traffic", figure_checkpoints),
}


def machine_facts() -> list[str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        cli = cli_version(copilot_cli()) or "unknown"
    except RuntimeError as error:
        cli = str(error)
    sdk = importlib.metadata.version("github-copilot-sdk")
    tmp = Path(tempfile.gettempdir())
    return [
        f"date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}",
        f"python: {platform.python_version()}; Copilot CLI {cli}; github-copilot-sdk {sdk}",
        f"temp dir: {tmp} on {filesystem_of(tmp)}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Measure planeteer's performance figures and print them."
    )
    parser.add_argument("--quick", action="store_true", help="a smaller smoke version (under a minute)")
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), help="run only these figures")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    results = Results()
    began = time.perf_counter()
    for key in args.only or sorted(FIGURES):
        name, run = FIGURES[key]
        try:
            run(sizes, results)
        except Exception as error:
            traceback.print_exc()
            results.errors.append(f"figure {key} ({name}) could not be measured: {error}")
            results.add(key, name, "ERROR")
    print()
    print(f"Planeteer benchmarks ({'quick' if args.quick else 'full'}), {time.perf_counter() - began:.0f} s")
    for fact in machine_facts():
        print(fact)
    print_table(results)
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
