"""A plan's task worktrees and its integration branch, on plain git, never touching the user's checkout.

Each task works in its own worktree on its own branch, made from the integration branch's tip when the
task starts. A finished task's work is committed there, then merged into the integration branch with
`git merge-tree` and a compare-and-swap ref update: no checkout is needed to merge, so the user's branch,
index and files stay as they are. Every step reads git's state first, so a step repeated after a crash
(SIGKILL between "committed" and "merged", say) neither loses nor doubles a commit. A done task's worktree is
handed to the next task that starts (`release`, then `prepare`), so a task rarely pays for a whole checkout.
"""

from __future__ import annotations

import functools
import itertools
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from planeteer_action.errors import ConfigError
from planeteer_action.worktrees import names
from planeteer_action.worktrees.git import git_out, identity_args, run_git


@dataclass(frozen=True)
class Integrated:
    """A merge's result: the integration commit holding the task's work, or the paths that conflicted."""

    commit: str | None
    changed: bool
    conflicts: list[str] = field(default_factory=list)


class PlanWorktrees:
    """The git side of one plan's run. Methods block (they run git): call them from a worker thread."""

    def __init__(self, root: Path, subdir: Path, common_dir: Path, plan_id: str, base_commit: str) -> None:
        self.root = root
        self.subdir = subdir
        self.common_dir = common_dir
        self.plan_id = plan_id
        self.base_commit = base_commit
        self.integration_branch = names.integration_branch(plan_id)

    @functools.cached_property
    def identity(self) -> list[str]:
        """The committer for planeteer's commits, read once: the repository's configuration does not change
        under a run, and asking git for it anew cost two processes a commit and two a merge."""
        return identity_args(self.root)

    @classmethod
    def open(cls, working_directory: Path, plan_id: str, base_commit: str | None) -> PlanWorktrees:
        """The plan's worktrees for a checkout; `base_commit` None means the checkout's HEAD (a first run)."""
        code, root = run_git(working_directory, "rev-parse", "--show-toplevel", ok_codes=(0, 128))
        if code != 0:
            raise ConfigError(
                f"{working_directory} is not in a git repository: worktree isolation needs one "
                "(`git init` and commit), or pass --isolation shared"
            )
        code, head = run_git(working_directory, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", ok_codes=(0, 1))
        if code != 0:
            raise ConfigError(
                f"the repository at {root} has no commit yet: commit something first, or pass --isolation shared"
            )
        common = Path(git_out(working_directory, "rev-parse", "--git-common-dir"))
        common_dir = (working_directory / common).resolve()
        subdir = working_directory.resolve().relative_to(Path(root).resolve())
        worktrees = cls(Path(root), subdir, common_dir, plan_id, base_commit or head)
        worktrees.refuse_checked_out_integration()
        return worktrees

    def refuse_checked_out_integration(self) -> None:
        """Merges move the integration branch: a checkout of it (the user's, say) would be changed under them."""
        path = None
        for line in git_out(self.root, "worktree", "list", "--porcelain").splitlines():
            if line.startswith("worktree "):
                path = line.removeprefix("worktree ")
            elif line == f"branch refs/heads/{self.integration_branch}":
                raise ConfigError(
                    f"{self.integration_branch} is checked out in {path}, and planeteer moves that branch as tasks "
                    f"finish: switch that checkout to another branch (`git switch -`), then run again"
                )

    def ensure_integration(self) -> str:
        """The integration branch's tip, creating the branch at the base commit when it does not exist."""
        ref = f"refs/heads/{self.integration_branch}"
        code, tip = run_git(self.root, "rev-parse", "--verify", "--quiet", ref, ok_codes=(0, 1))
        if code == 0:
            return tip
        run_git(self.root, "update-ref", ref, self.base_commit, "")
        return self.base_commit

    def prepare(self, task_id: str, reset_attempt: int | None) -> tuple[Path, str | None]:
        """The task's working directory (its worktree), and the abandoned ref when `reset_attempt` asked for
        a reset of the worktree that attempt left. An existing worktree is reused as it is (a resume)."""
        path = names.worktree_path(self.common_dir, self.plan_id, task_id)
        ready = names.ready_marker(path)
        if (path / ".git").exists() and not ready.exists():
            self._discard(path)
        if not (path / ".git").exists():
            shutil.rmtree(path, ignore_errors=True)  # a folder git no longer knows (a crash mid-add)
            run_git(self.root, "worktree", "prune")
            branch = names.task_branch(self.plan_id, task_id)
            code, _ = run_git(self.root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", ok_codes=(0, 1))
            start = [branch] if code == 0 else ["-b", branch, self.ensure_integration()]
            path.parent.mkdir(parents=True, exist_ok=True)
            if self._take_spare(path):
                run_git(path, "checkout", "--quiet", "--force", *start)
                run_git(path, "clean", "-ffdxq")
            else:
                run_git(self.root, "worktree", "add", "--quiet", str(path), *start)
            ready.touch()
        abandoned = self.reset(task_id, reset_attempt) if reset_attempt is not None else None
        return path / self.subdir, abandoned

    def release(self, task_id: str) -> None:
        """Hand a done task's worktree on: it becomes a spare that the next task's `prepare` checks out where
        it is, rewriting only the files that differ, instead of writing a whole new checkout and deleting this one.

        Call it once the task's merge is saved. Each step leaves what a crash can leave anyway: without its
        ready marker, the task's folder or the spare is removed by the next `prepare` or `remove`.
        """
        path = names.worktree_path(self.common_dir, self.plan_id, task_id)
        if not names.ready_marker(path).exists():
            return
        names.ready_marker(path).unlink()
        # Detached, the spare holds no branch: the task's branch can be checked out again (a retry) or deleted.
        run_git(path, "update-ref", "--no-deref", "HEAD", "HEAD")
        spares = names.spare_worktrees(self.common_dir, self.plan_id)
        spares.mkdir(parents=True, exist_ok=True)
        spare = next(spares / str(n) for n in itertools.count() if not (spares / str(n)).exists())
        path.rename(spare)
        run_git(self.root, "worktree", "repair", str(spare))
        names.ready_marker(spare).touch()

    def _take_spare(self, path: Path) -> bool:
        """Move a ready spare to `path` and tell git where it now is; False when there is none that works."""
        spares = names.spare_worktrees(self.common_dir, self.plan_id)
        for marker in sorted(spares.glob("*.ready")) if spares.is_dir() else []:
            spare = spares / marker.name.removesuffix(".ready")
            marker.unlink()
            if not spare.is_dir():
                continue  # removed by hand
            spare.rename(path)
            code, _ = run_git(self.root, "worktree", "repair", str(path), ok_codes=(0, 1, 128))
            if code == 0:
                return True
            self._discard(path)  # its git admin folder is gone: a folder of plain files
        return False

    def _discard(self, path: Path) -> None:
        """Remove a worktree folder, and git's record of it, whatever state a crash left them in."""
        run_git(self.root, "worktree", "remove", "--force", "--force", str(path), ok_codes=(0, 128))
        shutil.rmtree(path, ignore_errors=True)
        run_git(self.root, "worktree", "prune")

    def commit(self, task_id: str, title: str, session_id: str) -> bool:
        """Commit what the agent left uncommitted (commits it made itself stay); False when nothing was left."""
        path = names.worktree_path(self.common_dir, self.plan_id, task_id)
        run_git(path, "add", "--all")
        code, _ = run_git(path, "diff", "--cached", "--quiet", ok_codes=(0, 1))
        if code == 0:
            return False
        trailers = [
            f"--trailer={key}: {value}" for key, value in names.commit_trailers(self.plan_id, task_id, session_id)
        ]
        run_git(path, *self.identity, "commit", "--quiet", "--no-verify", "-m", title or task_id, *trailers)
        return True

    def integrate(self, task_id: str, title: str) -> Integrated:
        """Merge the task's branch into the integration branch; callers hold one lock so merges go one at a time.

        Already merged (a repeat after a crash) returns the merge that holds it; a branch with nothing new
        returns the tip, unchanged.
        """
        tip = self.ensure_integration()
        task_tip = git_out(self.root, "rev-parse", f"refs/heads/{names.task_branch(self.plan_id, task_id)}")
        if self._is_ancestor(task_tip, tip):
            merged = self._merge_of(task_id, tip)
            return Integrated(commit=merged or tip, changed=merged is not None)
        code, out = run_git(
            self.root, "merge-tree", "--write-tree", "--name-only", "--no-messages", tip, task_tip, ok_codes=(0, 1)
        )
        lines = out.splitlines()
        if code == 1:
            return Integrated(commit=None, changed=True, conflicts=list(dict.fromkeys(lines[1:])))
        trailers = f"{names.TRAILER_PLAN}: {self.plan_id}\n{names.TRAILER_TASK}: {task_id}"
        merge = git_out(
            self.root,
            *self.identity,
            "commit-tree",
            lines[0],
            "-p",
            tip,
            "-p",
            task_tip,
            "-m",
            f"Merge task {task_id}: {title}",
            "-m",
            trailers,
        )
        run_git(self.root, "update-ref", f"refs/heads/{self.integration_branch}", merge, tip)
        return Integrated(commit=merge, changed=True)

    def reset(self, task_id: str, attempt: int) -> str | None:
        """Put the task's worktree and branch back at the integration tip, keeping what `attempt` left (its
        commits and its uncommitted files) on an abandoned ref, which this returns; None when it left nothing."""
        path = names.worktree_path(self.common_dir, self.plan_id, task_id)
        tip = self.ensure_integration()
        run_git(path, "add", "--all")
        tree = git_out(path, "write-tree")
        head = git_out(path, "rev-parse", "HEAD")
        kept = None
        if tree != git_out(path, "rev-parse", "HEAD^{tree}") or not self._is_ancestor(head, tip):
            message = f"Planeteer: abandoned attempt {attempt} of task {task_id}"
            snapshot = git_out(path, *self.identity, "commit-tree", tree, "-p", head, "-m", message)
            kept = names.abandoned_ref(self.plan_id, task_id, attempt)
            run_git(self.root, "update-ref", kept, snapshot)
        run_git(path, "reset", "--quiet", "--hard", tip)
        run_git(path, "clean", "-ffdxq")
        return kept

    def remove(self, abandoned: bool = True) -> list[str]:
        """Remove the plan's worktrees (spares too) and task branches, and with `abandoned` the abandoned
        attempts' refs (never the integration branch); returns the branches and refs deleted."""
        folder = names.worktrees_root(self.common_dir, self.plan_id)
        spares = names.spare_worktrees(self.common_dir, self.plan_id)
        for path in sorted(path for parent in (folder, spares) if parent.is_dir() for path in parent.iterdir()):
            if (path / ".git").exists():
                run_git(self.root, "worktree", "remove", "--force", "--force", str(path), ok_codes=(0, 128))
        shutil.rmtree(folder, ignore_errors=True)
        run_git(self.root, "worktree", "prune")
        refs = git_out(
            self.root,
            "for-each-ref",
            "--format=%(refname)",
            names.task_branches_prefix(self.plan_id),
            *([names.abandoned_refs_prefix(self.plan_id)] if abandoned else []),
        ).split()
        for ref in refs:
            run_git(self.root, "update-ref", "-d", ref)
        return refs

    def _is_ancestor(self, commit: str, of: str) -> bool:
        code, _ = run_git(self.root, "merge-base", "--is-ancestor", commit, of, ok_codes=(0, 1))
        return code == 0

    def _merge_of(self, task_id: str, tip: str) -> str | None:
        """The integration commit that merged `task_id`, found by its trailer on the first-parent history."""
        log = git_out(
            self.root,
            "log",
            "--first-parent",
            "--format=%H %(trailers:key=Planeteer-Task,valueonly,separator=%x00)",
            tip,
            f"^{self.base_commit}",
        )
        for line in log.splitlines():
            commit, _, value = line.partition(" ")
            if value == task_id:
                return commit
        return None
