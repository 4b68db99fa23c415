"""Kill, interrupt and terminate `planeteer run` over and over, then check that its promises held.

    .venv/bin/python -m bench.chaos                  # = make chaos: 16 rounds, a random seed (printed)
    .venv/bin/python -m bench.chaos --seed 7 --rounds 30
    .venv/bin/python -m bench.chaos --quick          # 4 rounds, a smoke run

Each round starts (or resumes) the real `planeteer run` on a 10-task plan, with the real Copilot CLI and
the local chaos model, and sends its process group SIGKILL, SIGINT or SIGTERM at a seeded random instant. A
last run finishes the plan. Printed: rounds survived, finished tasks repeated, tasks done without their work,
stray processes, and for SIGINT/SIGTERM the time from the signal to the exit and the exit codes. It is a
measurement, not a test: it exits 1 when a promise was broken (the lines marked BROKEN say which), else 0.
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.chaos.model import ChaosModel
from bench.chaos.rounds import (
    CLEAN_EXIT_CODE,
    CLEAN_EXIT_SECONDS,
    SIGNALS,
    Instant,
    RoundResult,
    draw_instant,
    run_round,
    run_to_end,
)
from bench.chaos.workload import SLEEPS, Epoch, EpochVerdict, chaos_plan, check_epoch, new_epoch
from bench.common import copilot_cli, scratch
from planeteer_action.copilot.runtime import kill_tagged_processes, tagged_processes
from planeteer_action.plan.store import load_plan

QUICK_ROUNDS = 4
SIGNAL_NAMES = sorted(SIGNALS)


def survived(instant: Instant, result: RoundResult) -> bool:
    """The run ended as its signal asks, left a plan that loads, and (stopped cleanly) left nothing running."""
    if result.plan_problem is not None or result.note:
        return False
    if not result.signalled:
        return result.code == 0
    if instant.signal_name == "SIGKILL":
        return result.code == -signal.SIGKILL
    ended = stopped_cleanly(result) or ended_in_start_up(instant, result)
    return ended and result.strays == 0 and not result.left_in_progress


def ended_in_start_up(instant: Instant, result: RoundResult) -> bool:
    """Ended by the signal in Python's own start-up, before planeteer's first line could handle it: nothing ran,
    nothing is lost (tests/test_cli_interrupt.py accepts the same, told apart by the output)."""
    return result.code == -SIGNALS[instant.signal_name] and result.events == 0


def stopped_cleanly(result: RoundResult) -> bool:
    """SIGINT/SIGTERM: exit 130 within CLEAN_EXIT_SECONDS, or 0 when the signal came after the last task was done
    (the run was already ending with the plan complete, and nothing was left to stop)."""
    ended_anyway = result.code == 0 and result.complete and result.done_after_signal == 0
    code_ok = result.code == CLEAN_EXIT_CODE or ended_anyway
    return code_ok and result.exit_seconds is not None and result.exit_seconds <= CLEAN_EXIT_SECONDS


def describe(result: RoundResult) -> str:
    if result.signalled and result.exit_seconds is not None:
        ended = f"exit {result.code} after {result.exit_seconds:.2f} s"
    elif result.signalled:
        ended = "no exit"
    else:
        ended = f"ended by itself (exit {result.code})"
    parts = [ended, result.plan_problem or "plan loads", f"{result.done}/{result.total} done"]
    parts.append(f"{result.strays} tagged processes left")
    if result.done_after_signal:
        parts.append(f"{result.done_after_signal} tasks done after the signal")
    if result.left_in_progress:
        parts.append(f"left in_progress: {', '.join(result.left_in_progress)}")
    if result.note:
        parts.append(result.note)
    return "; ".join(parts)


def verdict_of(epoch: Epoch, model: ChaosModel) -> EpochVerdict:
    """The epoch's check; a plan file that does not load stops the chaos run there (a broken promise)."""
    try:
        plan = load_plan(epoch.plan_path)
    except Exception as error:
        raise PlanLost(f"the plan file of epoch {epoch.number} does not load: {error}") from error
    return check_epoch(epoch, plan, model.log)


class PlanLost(Exception):
    """The plan file was torn or lost: nothing further can be checked."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=16, help="signal rounds before the final run (16)")
    parser.add_argument("--seed", type=int, help="seed of the signals and instants (default: random, printed)")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK_ROUNDS} rounds")
    parser.add_argument("--time-limit", type=float, default=20, help="start no round after this many minutes")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it afterwards (plans, logs, notes)")
    args = parser.parse_args(argv)
    if args.rounds < 0:
        parser.error("--rounds must be 0 or more")
    if args.keep is not None and args.keep.exists():
        parser.error(f"--keep {args.keep} already exists: give a folder that does not, so no earlier run is mixed in")
    rounds = QUICK_ROUNDS if args.quick else args.rounds
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    copilot_cli()
    print(f"chaos: {rounds} rounds on a {len(chaos_plan().tasks)}-task plan, seed {seed}", flush=True)
    print(f"replay: .venv/bin/python -m bench.chaos --seed {seed} --rounds {rounds}", flush=True)
    deadline = time.monotonic() + args.time_limit * 60
    try:
        if args.keep is not None:
            args.keep.mkdir(parents=True)
            return chaos(args.keep, rounds, seed, deadline)
        with scratch("chaos") as root:
            return chaos(root, rounds, seed, deadline)
    except KeyboardInterrupt:
        print("chaos: interrupted (its runs and their processes were stopped)", file=sys.stderr)
        return 130


def chaos(root: Path, rounds: int, seed: int, deadline: float) -> int:
    rng = random.Random(seed)
    model = ChaosModel(chaos_plan().tasks, SLEEPS)
    model.start()
    epochs = [new_epoch(root, 1)]
    model.epoch = 1
    verdicts: list[EpochVerdict] = []
    played: list[tuple[Instant, RoundResult]] = []
    try:
        for number in range(1, rounds + 1):
            if time.monotonic() > deadline:
                print(f"time limit reached: {rounds - number + 1} rounds not played", flush=True)
                break
            instant = draw_instant(rng)
            result = run_round(epochs[-1], model, instant, root / "runs.log")
            played.append((instant, result))
            mark = "ok" if survived(instant, result) else "BROKEN"
            print(f"round {number:>3}/{rounds}  {instant.describe():<44} {mark:<6} {describe(result)}", flush=True)
            if result.complete:
                verdicts.append(verdict_of(epochs[-1], model))
                epochs.append(new_epoch(root, len(epochs) + 1))
                model.epoch = len(epochs)
        final = run_to_end(epochs[-1], model, root / "runs.log")
        print(f"final run: {describe(final)}", flush=True)
        verdicts.append(verdict_of(epochs[-1], model))
        left_at_end = len(tagged_processes(epochs[-1].tag))
        return report(played, final, verdicts, left_at_end)
    except PlanLost as error:
        print(f"BROKEN: {error}")
        return 1
    finally:
        model.stop()
        for epoch in epochs:
            kill_tagged_processes(epoch.tag)


def report(
    played: Sequence[tuple[Instant, RoundResult]], final: RoundResult, verdicts: Sequence[EpochVerdict], left: int
) -> int:
    """Print the figures; 1 if a promise was broken."""
    print()
    broken = _report_rounds(played) + _report_tasks(final, verdicts) + _report_signals(played, left)
    print(f"BROKEN: {'; '.join(broken)}" if broken else "every promise held")
    return 1 if broken else 0


def _report_rounds(played: Sequence[tuple[Instant, RoundResult]]) -> list[str]:
    kept = sum(survived(instant, result) for instant, result in played)
    counts = ", ".join(f"{name} ×{sum(i.signal_name == name for i, _ in played)}" for name in SIGNAL_NAMES)
    early = sum(not result.signalled for _, result in played)
    print(f"rounds survived: {kept}/{len(played)} ({counts}; {early} ended by themselves before their signal)")
    return ["rounds not survived"] if kept < len(played) else []


def _report_tasks(final: RoundResult, verdicts: Sequence[EpochVerdict]) -> list[str]:
    broken = []
    incomplete = [f"epoch {v.epoch}: {v.done}/{v.total}" for v in verdicts if v.done != v.total]
    print(f"plans run to completion: {len(verdicts) - len(incomplete)}/{len(verdicts)} (final run exit {final.code})")
    if incomplete or final.code != 0 or final.note:
        broken.append(f"plan not completed ({'; '.join(incomplete) or final.note or f'exit {final.code}'})")
    repeated = [f"epoch {v.epoch}: {', '.join(v.repeated_tasks)}" for v in verdicts if v.repeated_tasks]
    requests = sum(v.repeat_requests for v in verdicts)
    full = sum(v.repeat_full_prompts for v in verdicts)
    print(f"finished tasks repeated: {sum(len(v.repeated_tasks) for v in verdicts)}", end="")
    print(f" ({requests} model requests for a task after it was done, {full} with its full prompt", end="")
    print(f"{': ' if repeated else ''}{'; '.join(repeated)})")
    without = [f"epoch {v.epoch}: {', '.join(v.without_work)}" for v in verdicts if v.without_work]
    print(f"tasks done without their work: {sum(len(v.without_work) for v in verdicts)}", end="")
    print(f" ({'; '.join(without)})" if without else "")
    broken += ["finished task repeated"] * bool(repeated) + ["task done without its work"] * bool(without)
    return broken


def _report_signals(played: Sequence[tuple[Instant, RoundResult]], left: int) -> list[str]:
    broken = []
    stopped = [(i, r) for i, r in played if r.signalled and i.signal_name != "SIGKILL"]
    clean = [result for instant, result in stopped if not ended_in_start_up(instant, result)]
    if len(clean) < len(stopped):
        print(f"ended by their signal in Python's start-up, before planeteer ran: {len(stopped) - len(clean)}")
    killed = [result for instant, result in played if result.signalled and instant.signal_name == "SIGKILL"]
    after_clean, after_kill = sum(r.strays for r in clean), sum(r.strays for r in killed)
    print(f"stray processes: {after_clean} after SIGINT/SIGTERM exits; {left} after the final run", end="")
    print(f" ({after_kill} right after SIGKILLs, which the next run stops)")
    if after_clean or left:
        broken.append("stray processes")
    if not clean:
        return broken
    times = [r.exit_seconds for r in clean if r.exit_seconds is not None and r.code in (CLEAN_EXIT_CODE, 0)]
    codes = Counter(r.code for r in clean)
    timing = f"median {statistics.median(times):.2f} s, max {max(times):.2f} s" if times else "-"
    print(f"SIGINT/SIGTERM → clean exit: {timing} ({len(times)} of {len(clean)} signalled runs);", end="")
    print(f" exit codes: {', '.join(f'{code} ×{n}' for code, n in codes.items())}", end="")
    print(" (0: the last task was done before the signal came)" if 0 in codes else "")
    if not all(stopped_cleanly(r) for r in clean):
        broken.append(f"SIGINT/SIGTERM not always exit {CLEAN_EXIT_CODE} within {CLEAN_EXIT_SECONDS:g} s")
    return broken


if __name__ == "__main__":
    sys.exit(main())
