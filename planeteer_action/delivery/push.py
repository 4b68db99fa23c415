"""Git for delivery: which remote to push to, pushing a branch with a token, committing the plan file.

The token reaches git only through the environment of the one `git push` child: a credential helper given
in that child's GIT_CONFIG_* variables reads it from there. It is never in an argument list, never written
to `.git/config` (the helper list is reset for the command, so no store helper of the user's can keep it)
and masked in every message. Extra headers configured for the push URL (actions/checkout persists the job's
token as one) are reset for the command too, so the push goes with the token given. Git never prompts
(GIT_TERMINAL_PROMPT=0): a rejected token fails at once.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from planeteer_action import gitrun
from planeteer_action.delivery.errors import DeliveryFailed, DeliveryRefused
from planeteer_action.redaction import mask

TOKEN_ENV = "PLANETEER_PUSH_TOKEN"
# Answers git's `get` with the token from the environment of the git process that runs it; ignores
# `store` and `erase`, so nothing is kept anywhere.
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get && printf "username=x-access-token\\npassword=%s\\n" "$' + TOKEN_ENV + '"; }; f'
)
PUSH_TIMEOUT_SECONDS = 300
# Who the plan-file commit is by when the checkout has no identity (an Actions runner has none).
FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "planeteer",
    "GIT_AUTHOR_EMAIL": "planeteer@users.noreply.github.com",
    "GIT_COMMITTER_NAME": "planeteer",
    "GIT_COMMITTER_EMAIL": "planeteer@users.noreply.github.com",
}


def git_environment(
    token: str | None, base: dict[str, str] | None = None, *, push_url: str | None = None
) -> dict[str, str]:
    """The environment for one git child: never prompting, and with `token` only for its credential helper;
    with a `push_url`, the extra headers configured for its server are dropped for this command."""
    env = dict(os.environ if base is None else base)
    env["GIT_TERMINAL_PROMPT"] = "0"
    if token:
        start = int(env.get("GIT_CONFIG_COUNT") or 0)
        settings = [("credential.helper", ""), ("credential.helper", CREDENTIAL_HELPER), ("http.extraheader", "")]
        server = urlsplit(push_url or "")
        if server.scheme in ("http", "https"):
            settings.append((f"http.{server.scheme}://{server.netloc.rpartition('@')[2]}/.extraheader", ""))
        for index, (key, value) in enumerate(settings, start=start):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        env["GIT_CONFIG_COUNT"] = str(start + len(settings))
        env[TOKEN_ENV] = token
    return env


def run_git(
    repo: Path,
    args: Sequence[str],
    *,
    token: str | None = None,
    env: dict[str, str] | None = None,
    push_url: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run git in `repo`; its output with the token masked. Never raises for git's own failures."""
    try:
        done = gitrun.run_git(
            repo, args, env={**git_environment(token, push_url=push_url), **(env or {})}, timeout=PUSH_TIMEOUT_SECONDS
        )
    except gitrun.GitNotRun as exc:
        return subprocess.CompletedProcess(args, 1, "", mask(str(exc), [token]))
    output, errors = (mask(gitrun.text(stream), [token]) for stream in (done.stdout, done.stderr))
    return subprocess.CompletedProcess(args, done.returncode, output, errors)


def _git_line(repo: Path, *args: str) -> str | None:
    done = run_git(repo, args)
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def fetch_remote(repo: Path) -> str:
    """The remote the checkout fetches from: its branch's upstream remote, else `origin`, else the only one.
    Git pushes to that remote's push URL (`remote.<name>.pushurl`) when it has one."""
    remotes = (_git_line(repo, "remote") or "").split()
    branch = _git_line(repo, "symbolic-ref", "--quiet", "--short", "HEAD")
    upstream = _git_line(repo, "config", f"branch.{branch}.remote") if branch else None
    for candidate in (upstream, "origin"):
        if candidate in remotes:
            return candidate
    if len(remotes) == 1:
        return remotes[0]
    found = ", ".join(remotes) if remotes else "none"
    raise DeliveryRefused(
        f"cannot tell which git remote to push to (remotes: {found}): add `origin` "
        "(`git remote add origin URL`), or deliver nothing (`deliver: none`, or drop --push/--pull-request)"
    )


def branch_tip(repo: Path, branch: str) -> str | None:
    """The commit `branch` points at, or None when there is no such branch."""
    return _git_line(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")


def check_push_access(repo: Path, remote: str, branch: str, token: str | None) -> None:
    """A dry-run push of HEAD to `branch`: git asks the remote for write access (GitHub refuses the receive-pack
    handshake to a token without `contents: write`) and sends nothing. A refused ref (the remote branch is
    ahead) still proves access."""
    args = ["push", "--dry-run", "--porcelain", remote, f"HEAD:refs/heads/{branch}"]
    done = run_git(repo, args, token=token, push_url=_push_url(repo, remote))
    if done.returncode == 0 or any(line.startswith("!") for line in done.stdout.splitlines()):
        return
    raise DeliveryRefused(
        f"cannot push to git remote `{remote}` ({gitrun.first_line(done.stderr)}): give the token write access to "
        "the repository's contents (workflow `permissions: contents: write`), or set `deliver: none`"
    )


def push_branch(repo: Path, remote: str, commit: str, branch: str, token: str | None) -> None:
    """Push `commit` to the remote's `branch`, as a fast-forward only: work pushed by someone else is kept."""
    args = ["push", "--porcelain", remote, f"{commit}:refs/heads/{branch}"]
    done = run_git(repo, args, token=token, push_url=_push_url(repo, remote))
    if done.returncode == 0:
        return
    if any(line.startswith("!") for line in done.stdout.splitlines()):
        raise DeliveryFailed(
            f"git remote `{remote}` refused {branch}: it holds commits this run does not have; merge them into "
            f"the local {branch} (or delete the remote branch), then deliver again"
        )
    raise DeliveryFailed(f"pushing {branch} to git remote `{remote}` failed: {gitrun.first_line(done.stderr)}")


def _push_url(repo: Path, remote: str) -> str | None:
    return _git_line(repo, "remote", "get-url", "--push", remote)


def commit_files(repo: Path, branch: str, files: Sequence[Path], message: str) -> str | None:
    """Commit `files` (as they are on disk) on top of `branch` without touching the checkout or its index;
    moves the branch only if nobody moved it meanwhile. Returns the new tip, or None when nothing changed."""
    tip = branch_tip(repo, branch)
    root = _git_line(repo, "rev-parse", "--show-toplevel")
    if tip is None or root is None:
        return None
    with tempfile.TemporaryDirectory(prefix="planeteer-index-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        steps = [["read-tree", tip]]
        for path in files:
            blob = _checked(run_git(repo, ["hash-object", "-w", str(path)]), "store the plan file")
            relative = path.resolve().relative_to(Path(root).resolve()).as_posix()
            steps.append(["update-index", "--add", "--cacheinfo", f"100644,{blob},{relative}"])
        for step in steps:
            _checked(run_git(repo, step, env=env), "stage the plan file")
        tree = _checked(run_git(repo, ["write-tree"], env=env), "write the tree")
    if tree == _git_line(repo, "rev-parse", f"{tip}^{{tree}}"):
        return None
    identity = {} if _git_line(repo, "config", "user.email") else FALLBACK_IDENTITY
    commit = _checked(run_git(repo, ["commit-tree", tree, "-p", tip, "-m", message], env=identity), "commit")
    _checked(run_git(repo, ["update-ref", f"refs/heads/{branch}", commit, tip]), f"move {branch}")
    return commit


def _checked(done: subprocess.CompletedProcess[str], doing: str) -> str:
    if done.returncode != 0:
        raise DeliveryFailed(f"could not {doing} for delivery: {gitrun.first_line(done.stderr)}")
    return done.stdout.strip()
