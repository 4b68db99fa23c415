"""The figures' results and the table they are printed in."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

# Results and the table


@dataclass
class Row:
    figure: str
    metric: str
    value: str
    target: str = ""
    ok: bool | None = None


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, figure: str, metric: str, value: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append(Row(figure, metric, value, target, ok))

    def note(self, text: str) -> None:
        self.notes.append(text)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.3f} s"


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def megabytes(size: float) -> str:
    """Bytes in decimal MB, as the artifact and cache services bill and GitHub's pages show them."""
    return f"{size / 1e6:.1f} MB"


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def progress(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("ok" if ok else "MISSED")


def print_table(results: Results) -> None:
    header = ("#", "metric", "measured", "target", "verdict")
    rows = [(r.figure, r.metric, r.value, r.target, _verdict(r.ok)) for r in results.rows]
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("-" * w for w in widths)
    print(rule)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print(rule)
    previous = None
    for line in rows:
        if previous is not None and line[0] != previous:
            print()
        previous = line[0]
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    print(rule)
    for note in results.notes:
        print(f"note: {note}")
    for error in results.errors:
        print(f"ERROR: {error}")
