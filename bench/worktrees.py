"""Figure 7: what worktree isolation adds to each task on a repository of 10,000 files, in time and disk.

Every step goes through the package's own worktree API, the calls a run makes: `PlanWorktrees.open` and
`ensure_integration` once (the runner), then per task `WorktreeWorkspaces.prepare`, `commit`, `integrate`
and `release` (the executor), and `PlanWorktrees.remove(False)` once every task is done (the runner).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import BENCH_BRANCH, Sizes, git, scratch
from bench.report import Results, mib, ms, p95, progress
from planeteer_action.plan.session_ids import session_id_for
from planeteer_action.worktrees import names
from planeteer_action.worktrees.tasks import PlanWorktrees
from planeteer_action.worktrees.workspaces import WorktreeWorkspaces

PLAN_ID = "bench-worktrees"
TARGET_SECONDS = 1.0
_TOP_FOLDERS = ("src", "lib", "tests", "docs", "tools", "assets")
_EXTENSIONS = (".py", ".ts", ".go", ".md", ".json", ".yaml", ".txt")
_VOCABULARY = (
    "def return self value index config client server handler request response error retry cache token "
    "import from class async await yield items count total name path open close read write test assert "
    "if else for while try except with None True False list dict map filter update build render parse"
)
_WORDS = _VOCABULARY.split()


@dataclass(frozen=True)
class Repository:
    """The scratch repository: what it holds, for the table."""

    files: list[str]
    folders: int
    depth: int
    content_bytes: int
    objects_bytes: int


@dataclass
class TaskCost:
    """One task's steps (seconds) and the disk its worktree added (bytes)."""

    create: float
    edit: float
    commit: float
    merge: float
    release: float
    checkout_bytes: int
    admin_bytes: int
    objects_bytes: int
    objects_added: int


def loose_objects(root: Path) -> int:
    """How many loose objects the repository holds (`git count-objects`: "N objects, K kilobytes")."""
    return int(git(root, "count-objects").split()[0])


def disk_bytes(path: Path) -> int:
    """What `du -s` says the folder takes on disk (blocks, not apparent size), in bytes."""
    done = subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0])


def _folders(rng: random.Random, count: int) -> list[str]:
    """`count` folders under a few top-level ones, one to four levels deep, as a real project's tree grows."""
    folders = list(_TOP_FOLDERS)
    while len(folders) < count:
        parent = rng.choice(folders)
        if parent.count("/") < 3:
            folders.append(f"{parent}/{rng.choice(_WORDS)}{len(folders)}")
    return folders


def _content(rng: random.Random, path: str, size: int) -> str:
    """About `size` bytes of code-like text (lines of words), unique to `path`, compressing as source does."""
    words = rng.choices(_WORDS, k=max(1, size // 6))
    lines = [" ".join(words[i : i + 9]) for i in range(0, len(words), 9)]
    return f"# {path}\n" + "\n".join(lines) + "\n"


def build_repository(root: Path, files: int, seed: int) -> Repository:
    """A committed, packed (as a clone is) repository of `files` files with source-like sizes: log-normal,
    median 2.5 kB, from 100 B to 200 kB, about 25 files a folder."""
    rng = random.Random(seed)
    folders = _folders(rng, max(len(_TOP_FOLDERS), files // 25))
    paths: list[str] = []
    total = 0
    for i in range(files):
        path = f"{rng.choice(folders)}/file{i}{rng.choice(_EXTENSIONS)}"
        size = int(min(200_000, max(100, rng.lognormvariate(7.8, 1.0))))  # e^7.8 ≈ 2,440 bytes
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        text = _content(rng, path, size)
        target.write_text(text)
        total += len(text)
        paths.append(path)
    git(root, "init", "--quiet", "--initial-branch", BENCH_BRANCH)
    git(root, "add", "--all")
    git(root, "-c", "user.email=bench@example.com", "-c", "user.name=Bench", "commit", "--quiet", "-m", "initial")
    git(root, "repack", "-a", "-d", "-q")
    used = {p.rsplit("/", 1)[0] for p in paths}
    depth = max(p.count("/") for p in paths)
    return Repository(paths, len(used), depth, total, disk_bytes(root / ".git" / "objects"))


def _edit(workdir: Path, existing: str, task_id: str) -> None:
    """A task's small change: one line appended to an existing file, and one new file beside it."""
    with (workdir / existing).open("a") as handle:
        handle.write(f"# changed by {task_id}\n")
    (workdir / existing).with_name(f"{task_id}.md").write_text(f"# {task_id}\n\nWhat {task_id} did.\n")


async def _timed_tasks(worktrees: PlanWorktrees, edits: list[str]) -> list[TaskCost]:
    """The tasks one after another (as at `-j 1`), each step timed as the executor awaits it."""
    workspaces = WorktreeWorkspaces(worktrees)
    objects = worktrees.common_dir / "objects"
    costs = []
    for i, existing in enumerate(edits):
        task_id = f"task-{i:02d}"
        title = f"Change {existing}"
        objects_before, loose_before = disk_bytes(objects), loose_objects(worktrees.root)
        started = time.perf_counter()
        workdir, abandoned = await workspaces.prepare(task_id, None)
        created = time.perf_counter()
        _edit(workdir, existing, task_id)
        edited = time.perf_counter()
        committed = await workspaces.commit(task_id, title, session_id_for(PLAN_ID, task_id, 1))
        done_commit = time.perf_counter()
        merged = await workspaces.integrate(task_id, title)
        done_merge = time.perf_counter()
        if abandoned is not None or not committed or merged.commit is None or merged.conflicts:
            raise RuntimeError(f"{task_id}: expected a fresh worktree, a commit and a clean merge, got {merged}")
        admin = Path(git(workdir, "rev-parse", "--absolute-git-dir"))
        checkout_bytes = disk_bytes(names.worktree_path(worktrees.common_dir, PLAN_ID, task_id))
        admin_bytes = disk_bytes(admin)
        objects_bytes, objects_added = (
            disk_bytes(objects) - objects_before,
            loose_objects(worktrees.root) - loose_before,
        )
        before_release = time.perf_counter()
        await workspaces.release(task_id)
        released = time.perf_counter()
        if names.worktree_path(worktrees.common_dir, PLAN_ID, task_id).exists():
            raise RuntimeError(f"{task_id}: its worktree is still there after `release`")
        costs.append(
            TaskCost(
                create=created - started,
                edit=edited - created,
                commit=done_commit - edited,
                merge=done_merge - done_commit,
                release=released - before_release,
                checkout_bytes=checkout_bytes,
                admin_bytes=admin_bytes,
                objects_bytes=objects_bytes,
                objects_added=objects_added,
            )
        )
    return costs


def _check_result(root: Path, worktrees: PlanWorktrees, head: str, tasks: int) -> None:
    """The work really is where isolation promises: one merge per task with its trailer, the checkout
    untouched, and after the removal no task worktree or branch left."""
    trailer = f"--format=%(trailers:key={names.TRAILER_TASK},valueonly)"
    log = git(root, "log", "--first-parent", trailer, f"HEAD..{worktrees.integration_branch}")
    merged = sorted(line for line in log.splitlines() if line)
    if merged != [f"task-{i:02d}" for i in range(tasks)]:
        raise RuntimeError(f"the integration branch does not hold one merge per task: {merged}")
    if git(root, "rev-parse", "HEAD") != head or git(root, "status", "--porcelain"):
        raise RuntimeError("the user's checkout was touched: HEAD moved or files changed")
    left = git(root, "worktree", "list", "--porcelain").count("worktree ")
    branches = git(root, "for-each-ref", names.task_branches_prefix(PLAN_ID))
    if left != 1 or branches or names.worktrees_root(worktrees.common_dir, PLAN_ID).exists():
        raise RuntimeError(f"remove left {left - 1} worktrees and these branches: {branches or 'none'}")


def _median_p95(values: list[float]) -> str:
    return f"{ms(statistics.median(values))} / {ms(p95(values))}"


def figure_worktrees(sizes: Sizes, results: Results) -> None:
    fig = "7"
    files, tasks = sizes.worktree_files, sizes.worktree_tasks
    progress(f"fig 7: a {files:,}-file repository, then {tasks} tasks each in its own worktree")
    with scratch("worktrees") as folder:
        root = folder / "repo"
        root.mkdir()
        built = time.perf_counter()
        repo = build_repository(root, files, sizes.dag_seed)
        progress(f"fig 7: repository built and packed in {time.perf_counter() - built:.1f} s")
        head = git(root, "rev-parse", "HEAD")
        checkout = disk_bytes(root) - disk_bytes(root / ".git")
        edits = random.Random(sizes.dag_seed).sample(repo.files, tasks)
        started = time.perf_counter()
        worktrees = PlanWorktrees.open(root, PLAN_ID, None)
        worktrees.ensure_integration()
        opened = time.perf_counter() - started
        costs = asyncio.run(_timed_tasks(worktrees, edits))
        all_worktrees = disk_bytes(names.worktrees_root(worktrees.common_dir, PLAN_ID))
        held = git(root, "worktree", "list", "--porcelain").count("worktree ") - 1
        if held != 1:
            raise RuntimeError(f"{held} worktrees held after {tasks} tasks one after another, expected the one spare")
        started = time.perf_counter()
        removed = asyncio.run(asyncio.to_thread(worktrees.remove, False))
        remove = time.perf_counter() - started
        if len(removed) != tasks:
            raise RuntimeError(f"remove deleted {len(removed)} task branches, expected {tasks}")
        _check_result(root, worktrees, head, tasks)
    _report(results, fig, repo, checkout, opened, costs, remove, all_worktrees)


def _report(
    results: Results,
    fig: str,
    repo: Repository,
    checkout: int,
    opened: float,
    costs: list[TaskCost],
    remove: float,
    all_worktrees: int,
) -> None:
    tasks = len(costs)
    share = remove / tasks
    totals = [c.create + c.commit + c.merge + c.release + share for c in costs]
    results.add(
        fig,
        f"repository: {len(repo.files):,} files in {repo.folders} folders (≤ {repo.depth} deep), packed",
        f"{repo.content_bytes / 1e6:.1f} MB of files, {mib(checkout / 1024)} on disk, "
        f"objects {mib(repo.objects_bytes / 1024)}",
    )
    results.add(fig, "once per run: open the plan's worktrees + integration branch", ms(opened))
    results.add(
        fig,
        "per task, create (`prepare`): the first task's, a new checkout (`git worktree add`)",
        ms(costs[0].create),
    )
    results.add(
        fig,
        f"  the {tasks - 1} others', a spare checked out anew (only changed files written): median / p95",
        _median_p95([c.create for c in costs[1:]]),
    )
    results.add(
        fig, "  the task's small edit (the agent's stand-in, not counted)", _median_p95([c.edit for c in costs])
    )
    results.add(
        fig,
        "  commit with trailers (`commit`): the first task's / median / p95 of the others",
        f"{ms(costs[0].commit)} / {_median_p95([c.commit for c in costs[1:]])}",
    )
    results.add(fig, "  merge into planeteer/<id> (`integrate`): median / p95", _median_p95([c.merge for c in costs]))
    results.add(
        fig, "  hand the worktree on once saved (`release`): median / p95", _median_p95([c.release for c in costs])
    )
    results.add(
        fig,
        "  remove (`remove`, the one spare left at the run's end): total / per task",
        f"{ms(remove)} / {ms(share)}",
    )
    median, worst = statistics.median(totals), p95(totals)
    target = f"≤ {TARGET_SECONDS:.0f} s"
    label = "per task, total: create + commit + merge + release + its share of remove: median"
    results.add(fig, label, ms(median), target, median <= TARGET_SECONDS)
    results.add(fig, f"  same: p95 of {tasks}", ms(worst), target, worst <= TARGET_SECONDS)
    results.add(fig, "  same: the first task (no spare yet)", ms(totals[0]), target, totals[0] <= TARGET_SECONDS)
    results.add(
        fig,
        "disk, one worktree: its files (du) / its git admin folder (index) / object store growth a task, median",
        f"{mib(statistics.median(c.checkout_bytes for c in costs) / 1024)} / "
        f"{mib(statistics.median(c.admin_bytes for c in costs) / 1024)} / "
        f"{statistics.median(c.objects_bytes for c in costs) / 1024:.1f} KiB "
        f"({statistics.median(c.objects_added for c in costs):.0f} objects)",
    )
    results.add(
        fig, f"disk, all the plan's worktrees after {tasks} tasks, before the run's end (du)", mib(all_worktrees / 1024)
    )
