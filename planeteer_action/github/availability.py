"""Which of GitHub's services this job step can use, read from the environment the runner gives it.

The rules are the official clients' own, so planeteer uses a service exactly where @actions/artifact and
@actions/cache would: the runner announces the v2 cache service with ACTIONS_CACHE_SERVICE_V2 (any non-empty
value; the runner writes "True") and @actions/cache ignores it on GitHub Enterprise Server; ACTIONS_CACHE_MODE
(`none`, `read`, `write`, `write-only`; unset or unknown allows everything) gates reads and writes. Where a
service is missing, `notes` says once what that costs, instead of the run going on silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

# @actions/cache lib/internal/config.js: KNOWN_CACHE_MODES, isCacheReadable, isCacheWritable.
_READABLE_MODES = frozenset({"read", "write"})
_WRITABLE_MODES = frozenset({"write", "write-only"})
_KNOWN_MODES = frozenset({"none", *_READABLE_MODES, *_WRITABLE_MODES})
_FROM_REPOSITORY = "Re-run all jobs will start from the repository's plan"
_STILL_WORKS = "The run itself works, and so does recovery within this job"


def is_ghes(server_url: str | None) -> bool:
    """GitHub Enterprise Server, as @actions/artifact and @actions/cache decide it (config.js `isGhes`):
    any host but github.com, *.ghe.com (GHE.com data residency) and *.localhost."""
    host = (urlsplit(server_url or "https://github.com").hostname or "").strip().upper()
    return not (host == "GITHUB.COM" or host.endswith(".GHE.COM") or host.endswith(".LOCALHOST"))


def cache_mode(env: Mapping[str, str]) -> str:
    """The job's cache mode (@actions/cache `getCacheMode`); '' when the runner set none."""
    return env.get("ACTIONS_CACHE_MODE", "").strip().lower()


@dataclass(frozen=True)
class Services:
    """What this step may use: the artifact service, reading and writing the cache, and what is missing."""

    artifacts: bool
    cache_read: bool
    cache_write: bool
    notes: tuple[str, ...]


def services(env: Mapping[str, str]) -> Services:
    """The services this step can use, with one note for each that a re-run would miss."""
    has_token = bool(env.get("ACTIONS_RUNTIME_TOKEN"))
    artifacts = has_token and bool(env.get("ACTIONS_RESULTS_URL"))
    mode = cache_mode(env)
    cache_v2 = artifacts and bool(env.get("ACTIONS_CACHE_SERVICE_V2")) and not is_ghes(env.get("GITHUB_SERVER_URL"))
    cache_read = cache_v2 and (mode not in _KNOWN_MODES or mode in _READABLE_MODES)
    cache_write = cache_v2 and (mode not in _KNOWN_MODES or mode in _WRITABLE_MODES)
    notes: list[str] = []
    if not has_token:
        notes.append(
            "This step did not receive the job's runtime token (ACTIONS_RUNTIME_TOKEN), so checkpoints are "
            f"neither uploaded nor cached and a re-run resumes nothing: it starts from the repository's plan. "
            f"{_STILL_WORKS}. Run planeteer through this repository's action.yml, which hands it the token."
        )
    elif not artifacts:
        notes.append(
            "This GitHub server offers no artifact service v4 (the runner set no ACTIONS_RESULTS_URL, as on "
            "GitHub Enterprise Server), so checkpoints are neither uploaded nor cached and a re-run resumes "
            f"nothing: it starts from the repository's plan. {_STILL_WORKS}."
        )
    elif not (cache_read and cache_write):
        notes.append(f"No cache copy of checkpoints: {_cache_reason(env, mode, cache_v2, cache_write)}.")
    return Services(artifacts, cache_read, cache_write, tuple(notes))


def _cache_reason(env: Mapping[str, str], mode: str, cache_v2: bool, cache_write: bool) -> str:
    consequence = f"{_FROM_REPOSITORY} (Re-run failed jobs still resumes from the artifacts)"
    if is_ghes(env.get("GITHUB_SERVER_URL")):
        return f"GitHub Enterprise Server has no cache service v2. {consequence}"
    if not cache_v2:
        return f"the runner did not announce the cache service v2 (ACTIONS_CACHE_SERVICE_V2). {consequence}"
    if not cache_write:
        return f"this job's cache mode is '{mode}', which permits no writes. {consequence}"
    return f"this job's cache mode is '{mode}', which permits no reads, so this attempt cannot restore from it"
