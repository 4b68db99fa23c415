"""Figure 8: what the GitHub Action's checkpoints cost, counted where GitHub would count it: at the services.

A simulated job runs the action through its outer doors only (`python -m planeteer_action run|finalize`,
launched the way action.yml launches them, in the environment the runner gives each step) against the local
artifact and cache services, with the real Copilot CLI and the offline scripted model. Every task's agent
writes incompressible data with a real shell command. What is measured is what the services saw (bytes
uploaded, artifacts created and alive) and what is worth keeping at the end (the agents' commits in git and
the plan's Copilot session folders on disk), so the figure does not depend on how checkpoints are laid out.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import QUICK, REPO, Sizes, copilot_cli, git, plan_dict, scratch, task_dict
from bench.report import Results, megabytes, progress, secs
from planeteer_action.copilot.offline_model import OFFLINE_MODEL, OfflineModelServer
from planeteer_action.github.artifacts import ArtifactService

# The bench reuses the test suite's simulated job (tests/action_env.py: the runner's step environments, each
# variable citing the runner source that sets it) and its local GitHub services (tests/fakes/: the twirp
# artifact and cache services and blob storage, checked against actions/toolkit and GitHub's docs): they are
# the faithful local services the tests already prove, and one simulation is better than two.
sys.path.insert(0, str(REPO / "tests"))
from action_env import Machine
from action_repository import checkout, make_origin
from fakes.github_services import ARTIFACT_BLOBS, CACHE_BLOBS, Exchange, FakeGitHubServices

FIG = "8"
PLAN_PATH = ".planeteer/plan.json"
CONCURRENCY = 4
_DONE_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) task (\S+) done\b", re.MULTILINE)
_RESTORED = "restored checkpoint"  # what the run step logs once a checkpoint is back on disk


@dataclass(frozen=True)
class CheckpointSizes:
    """Kept here rather than in common.Sizes: this figure's sizes concern no other figure."""

    whole_runs: tuple[int, ...] = (24, 200)
    payload: int = 256 * 1024
    many_tasks: int = 1000
    many_payload: int = 64
    restore_tasks: int = 24
    # Large enough that moving the bytes, not the restore's few round trips, is most of the fetch (~45 MB at half
    # of 24 tasks), small enough that the whole restore measurement stays near half a minute.
    restore_payload: int = 3 * 1024 * 1024


FULL_SIZES = CheckpointSizes()
QUICK_SIZES = CheckpointSizes(whole_runs=(8, 16), many_tasks=40, restore_tasks=8)


# What the services saw


@dataclass(frozen=True)
class Seen:
    """One request: `kind` is "artifact-blob", "cache-blob", a twirp method name, or "rest"; `size` the
    bytes sent (uploads) or answered (downloads); `name` the artifact a twirp artifact call names; `arrived`
    and `answered` (monotonic) when the fake read the request and when it wrote its answer's last byte."""

    wall: float
    arrived: float
    answered: float
    method: str
    kind: str
    name: str
    size: int
    status: int


class MeteredServices(FakeGitHubServices):  # type: ignore[misc,unused-ignore]  # Any to `mypy bench` alone
    """The tests' fake services, also noting every request's size and times (`seen`). Blob bodies are left out
    of the fake's own request log: a run uploads gigabytes, which the log would otherwise keep to the end."""

    def __init__(self) -> None:
        super().__init__(log_blob_bodies=False)
        self._seen_lock = threading.Lock()
        self.seen: list[Seen] = []

    def served(self, exchange: Exchange) -> None:
        kind = _kind(exchange.path)
        size = len(exchange.body) if exchange.method == "PUT" else exchange.answer_bytes
        name = _segment_name(exchange.body) if kind in _NAMED else ""
        times = (time.time(), exchange.arrived, exchange.answered)
        with self._seen_lock:
            self.seen.append(Seen(*times, exchange.method, kind, name, size, exchange.status))

    def since(self, mono: float) -> list[Seen]:
        """The requests that arrived at or after `mono`, in the order they were answered."""
        with self._seen_lock:
            return [s for s in self.seen if s.arrived >= mono]


def _kind(path: str) -> str:
    if path.startswith(ARTIFACT_BLOBS):
        return "artifact-blob"
    if path.startswith(CACHE_BLOBS):
        return "cache-blob"
    return path.rsplit("/", 1)[-1] if path.startswith("/twirp/") else "rest"


_NAMED = ("CreateArtifact", "FinalizeArtifact", "CreateCacheEntry", "FinalizeCacheEntryUpload")


def _segment_name(body: bytes) -> str:
    """What a twirp call names: an artifact's name, or a cache entry's key."""
    with contextlib.suppress(ValueError, AttributeError):
        request = json.loads(body)
        return str(request.get("name") or request.get("key", ""))
    return ""


def uploaded(seen: list[Seen], kind: str) -> int:
    return sum(s.size for s in seen if s.kind == kind and s.method == "PUT" and 200 <= s.status < 300)


def count(seen: list[Seen], kind: str) -> int:
    return sum(1 for s in seen if s.kind == kind and s.status == 200)


# The simulated job


@dataclass
class Job:
    """One workflow run of an `n`-task plan whose every task writes `payload` random bytes."""

    root: Path
    fake: MeteredServices
    model: OfflineModelServer
    n: int
    payload: int
    run_id: int = 8_000
    plan_id: str = "bench-checkpoints"
    origin: Path = field(init=False)
    sha: str = field(init=False)
    machines: list[Machine] = field(default_factory=list)

    def __post_init__(self) -> None:
        tasks = [task_dict(f"t{i:04d}") for i in range(self.n)]
        self.origin = self.root / "origin"
        self.sha = make_origin(self.origin, plan_dict(self.plan_id, tasks), PLAN_PATH)

    def machine(self, attempt: int) -> Machine:
        """A fresh runner: its own folder, checkout, RUNNER_TEMP and HOME (so a fresh Copilot home)."""
        folder = self.root / f"attempt{attempt}"
        workspace = checkout(self.origin, self.sha, folder / "work" / "repo")
        inputs = {
            "plan": PLAN_PATH,
            "concurrency": str(CONCURRENCY),
            "task-timeout": "10m",
            "on-interrupted": "resume",
            "github-token": self.fake.rest_token,
            "deliver": "none",
            "model": OFFLINE_MODEL,
            "provider-base-url": self.model.base_url,
            "provider-api-key": "sk-bench-provider-0123456789",
        }
        # PYTHONUNBUFFERED (a job's own `env:` could set it) so that log lines can be timed as they appear.
        machine = Machine(
            self.fake, self.run_id, attempt, folder, workspace, self.sha, inputs, {"PYTHONUNBUFFERED": "1"}
        )
        self.machines.append(machine)
        return machine

    def statuses(self, machine: Machine) -> dict[str, str]:
        try:
            plan = json.loads((machine.workspace / PLAN_PATH).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # not there yet, or caught between two writes
        return {t["id"]: t["status"] for t in plan["tasks"]}


def script(n: int, payload: int) -> dict[str, list[dict[str, Any]]]:
    """Each task: one real `bash` call writing `payload` incompressible bytes, then its answer."""
    return {
        f"t{i:04d}": [{"bash": f"head -c {payload} /dev/urandom > out-t{i:04d}.bin"}, {"text": f"t{i:04d} done"}]
        for i in range(n)
    }


@contextlib.contextmanager
def job(n: int, payload: int, prefix: str) -> Iterator[Job]:
    """The job's world: a scratch folder, the services and the model, all gone afterwards."""
    copilot_cli()
    fake = MeteredServices()
    with scratch(prefix) as root, fake, OfflineModelServer(script=script(n, payload)) as model:
        flow = Job(root, fake, model, n, payload)
        try:
            yield flow
        finally:
            for machine in flow.machines:
                machine.cleanup()


def run_job(machine: Machine, timeout: float) -> str:
    """Both steps of one attempt, as action.yml runs them; the run step's log."""
    result = machine.step("run", timeout)
    final = machine.step("finalize", timeout)
    if (result.exit_code, final.exit_code) != (0, 0):
        raise RuntimeError(f"the job failed: run {result.exit_code}, finalize {final.exit_code}\n{result.stdout}")
    return str(result.stdout)


# What is worth keeping


def state_bytes(job: Job, machine: Machine) -> tuple[int, int]:
    """(the agents' commits: every object the integration branch adds to the checked-out commit, by size;
    the plan's session folders: every file's size), measured at the end."""
    branch = f"planeteer/{job.plan_id}"
    objects = git(machine.workspace, "rev-list", "--objects", f"{job.sha}..{branch}")
    ids = "\n".join(line.split()[0] for line in objects.splitlines() if line.strip()) + "\n"
    batch = ["git", "cat-file", "--batch-check=%(objectsize)"]
    sizes = subprocess.run(batch, cwd=machine.workspace, input=ids, capture_output=True, text=True, check=True).stdout
    commits = sum(int(size) for size in sizes.split())
    plan = json.loads((machine.workspace / PLAN_PATH).read_text(encoding="utf-8"))
    session_ids = {a["sessionId"] for t in plan["tasks"] for a in t.get("attempts", [])}
    sessions = 0
    for folder in machine.runner_temp.rglob("session-state"):
        for session in folder.iterdir():
            if session.name in session_ids:
                sessions += sum(f.stat().st_size for f in session.rglob("*") if f.is_file() and not f.is_symlink())
    return commits, sessions


# Latency: from a task's TaskDone to the first checkpoint begun after it being safe (its cache copy finalized)


def done_times(stdout: str) -> dict[str, float]:
    """Each task's TaskDone time, from the action's log lines (`<event.at> task <id> done ...`)."""
    return {m.group(2): datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
            for m in _DONE_LINE.finditer(stdout)}  # fmt: skip


def latencies(seen: list[Seen], done: dict[str, float]) -> list[tuple[float, float, int]]:
    """(done time, seconds until a checkpoint begun after it was safe, that checkpoint's cache copy's bytes), in
    order: every checkpoint's cache copy is its first copy (`placement`). A lower bound: a checkpoint built just
    before a task was done but begun just after it counts, lacking it."""
    created = {s.name: s.wall for s in seen if s.kind == "CreateCacheEntry" and s.status == 200}
    finalized = [(s.wall, s.name) for s in seen if s.kind == "FinalizeCacheEntryUpload" and s.status == 200]
    sizes: dict[str, int] = {}
    current = ""
    for s in seen:  # each copy's blob PUTs follow its CreateCacheEntry on the uploader's one thread
        if s.kind == "CreateCacheEntry":
            current = s.name
        elif s.kind == "cache-blob" and s.method == "PUT":
            sizes[current] = sizes.get(current, 0) + s.size
    found = []
    for at in sorted(done.values()):
        after = [(end, name) for end, name in finalized if created.get(name, 0.0) >= at]
        if after:
            end, name = min(after)
            found.append((at, end - at, sizes.get(name, 0)))
    return found


def whole_run(n: int, payload: int, results: Results) -> None:
    progress(f"figure {FIG}: a job of {n} tasks writing {payload // 1024} KiB each, uninterrupted")
    with job(n, payload, f"ck{n}") as flow:
        machine = flow.machine(1)
        began = time.monotonic()
        stdout = run_job(machine, timeout=3600)
        seconds = time.monotonic() - began
        seen = flow.fake.since(0.0)
        commits, sessions = state_bytes(flow, machine)
        keep = commits + sessions
        artifact_bytes, cache_bytes = uploaded(seen, "artifact-blob"), uploaded(seen, "cache-blob")
        alive = sum(1 for a in flow.fake.artifacts if a.finalized)
        times = latencies(seen, done_times(stdout))
    target_ok = artifact_bytes <= 1.5 * keep
    results.add(FIG, f"{n} tasks × {payload // 1024} KiB: state worth keeping (commits + sessions)",
                f"{megabytes(keep)} ({megabytes(commits)} + {megabytes(sessions)})")  # fmt: skip
    results.add(FIG, f"{n} tasks: artifact bytes uploaded / state ({megabytes(artifact_bytes)})",
                f"{artifact_bytes / keep:.2f}×", "≤ 1.5×", target_ok)  # fmt: skip
    results.add(FIG, f"{n} tasks: cache bytes uploaded / state ({megabytes(cache_bytes)})",
                f"{cache_bytes / keep:.2f}×", "≤ 1.5×", cache_bytes <= 1.5 * keep)  # fmt: skip
    results.add(FIG, f"{n} tasks: artifacts created / alive at the end; job time",
                f"{count(seen, 'CreateArtifact')} / {alive}; {seconds:.0f} s")  # fmt: skip
    _latency_rows(n, times, results)


def _latency_rows(n: int, times: list[tuple[float, float, int]], results: Results) -> None:
    if len(times) < 4:
        results.note(f"figure {FIG}, {n} tasks: too few tasks done to compare early and late checkpoints")
        return
    quarter = max(1, len(times) // 4)
    early, late = times[:quarter], times[-quarter:]
    early_s = statistics.median(t for _, t, _ in early)
    late_s = statistics.median(t for _, t, _ in late)
    early_size = statistics.median(b for _, _, b in early)
    late_size = statistics.median(b for _, _, b in late)
    results.add(
        FIG,
        f"{n} tasks: TaskDone → next checkpoint safe in the cache, median of first / last {quarter} tasks "
        f"(copies {megabytes(early_size)} / {megabytes(late_size)})",
        f"{secs(early_s)} / {secs(late_s)}",
        "late ≤ 1.5× early",
        late_s <= 1.5 * max(early_s, 0.05),
    )


def many_tasks(n: int, payload: int, results: Results) -> None:
    progress(f"figure {FIG}: a job of {n} tasks writing {payload} bytes each (artifacts per job)")
    with job(n, payload, f"ck{n}") as flow:
        machine = flow.machine(1)
        began = time.monotonic()
        run_job(machine, timeout=7200)
        seconds = time.monotonic() - began
        seen = flow.fake.since(0.0)
        created = count(seen, "CreateArtifact")
        alive = sum(1 for a in flow.fake.artifacts if a.finalized)
    full = n >= FULL_SIZES.many_tasks
    results.add(FIG, f"{n}-task plan: artifacts created in the job ({seconds:.0f} s)", str(created),
                "≤ 500" if full else "(≤ 500 at 1,000 tasks)", created <= 500 if full else None)  # fmt: skip
    results.add(FIG, f"{n}-task plan: artifacts alive at the end", str(alive), "≤ 20", alive <= 20)


# Restore on a fresh runner


def restore(n: int, payload: int, results: Results) -> None:
    """Attempt 1 cancelled (SIGINT) once half the tasks are done; attempt 2 on a fresh runner restores."""
    progress(f"figure {FIG}: restore on a fresh runner, {n} tasks × {payload // 1024} KiB, cancelled at half")
    with job(n, payload, "ckrestore") as flow:
        first = flow.machine(1)
        first.interrupted_action(lambda: sum(s == "done" for s in flow.statuses(first).values()) >= n // 2,
                                 signal.SIGINT, timeout=1800)  # fmt: skip
        second = flow.machine(2)
        process, step_dir = second.start("run")
        started = float((step_dir / "started").read_text())
        restored_at = watch_for(step_dir / "stdout", _RESTORED, process.poll)
        second.collect("run", process, step_dir, timeout=1800)
        second.step("finalize", 1800)
        if restored_at is None:
            raise RuntimeError(f"attempt 2 logged no {_RESTORED!r}:\n{(step_dir / 'stdout').read_text()}")
        window = [s for s in flow.fake.since(started) if s.arrived <= restored_at]
        fetch = fetch_phase(window)
        one_file = download_time(flow.fake, fetch.size)
        step_wall = (step_dir / "started").stat().st_mtime  # the file holds the monotonic clock; mtime is wall
        model_first = min((r["time"] for r in flow.model.requests if r["time"] >= step_wall), default=None)
    results.add(FIG, f"restore, {n} tasks × {payload // 1024} KiB cancelled at half: fetch phase, first request → "
                f"last piece answered ({megabytes(fetch.size)} in {fetch.blobs} blobs, {fetch.requests} requests)",
                secs(fetch.seconds))  # fmt: skip
    results.add(FIG, "the same bytes downloaded as one artifact with ArtifactService.download (median of 3)",
                secs(one_file))  # fmt: skip
    results.add(FIG, "restore fetch phase / one download", f"{fetch.seconds / one_file:.2f}×", "≤ 1.5×",
                fetch.seconds <= 1.5 * one_file)  # fmt: skip
    results.add(FIG, f"whole restore: first request → {_RESTORED!r} logged (verify, unpack, branches, worktrees)",
                secs(restored_at - fetch.began))  # fmt: skip
    if model_first is not None:
        results.add(FIG, "attempt 2: step start → first task's model request (Python and CLI start included)",
                    secs(model_first - step_wall))  # fmt: skip


@dataclass(frozen=True)
class Fetch:
    """The requests of one fetch at the services: from the first one's arrival to the last blob's last byte."""

    began: float
    seconds: float
    size: int
    blobs: int
    requests: int


def fetch_phase(window: list[Seen]) -> Fetch:
    """The fetch within `window`, the requests of one restore (or one download): every request up to the last
    blob download, whose answered bytes are what was fetched."""
    blobs = [s for s in window if s.method == "GET" and s.kind.endswith("-blob")]
    if not window or not blobs:
        raise RuntimeError("the services saw no blob download in the window")
    began, ended = min(s.arrived for s in window), max(s.answered for s in blobs)
    requests = sum(1 for s in window if s.arrived <= ended)
    return Fetch(began, ended - began, sum(s.size for s in blobs), len(blobs), requests)


def watch_for(path: Path, text: str, finished: Callable[[], int | None]) -> float | None:
    """The monotonic time `text` first appears in the file at `path`, polled every 5 ms; None if the process
    ends without it."""
    while True:
        with contextlib.suppress(OSError):
            if text in path.read_text(encoding="utf-8", errors="replace"):
                return time.monotonic()
        if finished() is not None:
            return None
        time.sleep(0.005)


# One download, in a process of its own as the restore's is (the fake answers from the bench's process; a client
# there would share its interpreter lock), each start printed on the machine's monotonic clock.
_DOWNLOADER = """
import os, sys, time
from planeteer_action.github.artifacts import ArtifactService
service = ArtifactService.from_env(os.environ)
for _ in range(3):
    print(time.monotonic(), flush=True)
    service.download(sys.argv[1])
"""


def download_time(fake: MeteredServices, size: int) -> float:
    """The median of 3 downloads of one `size`-byte artifact through the package's own client, each timed at
    the services as the restore's fetch phase is (`fetch_phase`), so that both figures share one yardstick."""
    env = fake.runtime_env(9_999, 1)
    service = ArtifactService.from_env(env)
    if service is None:
        raise RuntimeError("the fake services offered no artifact service")
    service.upload("one-file", os.urandom(max(1, size)))
    command = [sys.executable, "-c", _DOWNLOADER, "one-file"]
    child = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True, cwd=REPO)
    starts = [float(line) for line in child.stdout.split()]
    deadline = time.monotonic() + 5  # a server thread notes its request once its answer is out: maybe after the exit
    while sum(s.kind == "artifact-blob" for s in fake.since(starts[0])) < len(starts) and time.monotonic() < deadline:
        time.sleep(0.001)
    ends = [*starts[1:], float("inf")]
    return statistics.median(
        fetch_phase([s for s in fake.since(began) if s.arrived < end]).seconds
        for began, end in zip(starts, ends, strict=True)
    )


def figure_checkpoints(sizes: Sizes, results: Results) -> None:
    own = QUICK_SIZES if sizes == QUICK else FULL_SIZES
    for n in own.whole_runs:
        whole_run(n, own.payload, results)
    restore(own.restore_tasks, own.restore_payload, results)
    many_tasks(own.many_tasks, own.many_payload, results)
