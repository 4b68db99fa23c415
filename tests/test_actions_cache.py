"""ActionsCache against the fake cache service: immutability, key matching, retries, survival of re-runs."""

from __future__ import annotations

import logging

import pytest
from fakes.github_services import CACHE_SERVICE, FakeGitHubServices

from planeteer_action.github._twirp import RetryPolicy
from planeteer_action.github.cache import CACHE_VERSION, ActionsCache, ActionsCacheError


def cache(fake: FakeGitHubServices, sleeps: list[float], run_id: int = 9, attempt: int = 1) -> ActionsCache:
    found = ActionsCache.from_env(fake.runtime_env(run_id, attempt), retry=RetryPolicy(sleep=sleeps.append))
    assert found is not None
    return found


def test_save_then_restore_the_exact_key(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    store = cache(fake, sleeps)

    assert store.save("planeteer-run-9-a1-0001", b"state one") is True

    assert store.restore("planeteer-run-9-a1-0001", []) == ("planeteer-run-9-a1-0001", b"state one")
    (entry,) = fake.cache_entries
    assert (entry.key, entry.version, entry.size, entry.finalized) == (
        "planeteer-run-9-a1-0001",
        CACHE_VERSION,
        9,
        True,
    )
    create = next(r for r in fake.requests if r.path == f"/twirp/{CACHE_SERVICE}/CreateCacheEntry")
    assert create.headers["authorization"].startswith("Bearer ")


def test_find_names_the_matched_entry_without_downloading_it(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    store = cache(fake, sleeps)
    store.save("planeteer-run-9-a1-0001", b"oldest")
    store.save("planeteer-run-9-a1-0002", b"newer")
    before = len(fake.requests)

    hit = store.find("planeteer-run-9-latest", ["planeteer-run-9-"])

    assert hit is not None and hit.key == "planeteer-run-9-a1-0002"
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests[before:]] == ["GetCacheEntryDownloadURL"]
    assert "sig=" in hit.signed_url and "sig=" not in repr(hit)
    assert store.download(hit) == b"newer"
    assert store.find("planeteer-run-8", ["planeteer-run-8-"]) is None


def test_entries_are_immutable(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    store = cache(fake, sleeps)
    assert store.save("planeteer-run-9", b"first") is True

    assert store.save("planeteer-run-9", b"second") is False

    assert store.restore("planeteer-run-9", []) == ("planeteer-run-9", b"first")
    assert len(fake.cache_entries) == 1


def test_restore_prefers_exact_then_newest_prefix_match(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    store = cache(fake, sleeps)
    store.save("planeteer-run-9-a1-0001", b"oldest")
    store.save("planeteer-run-9-a1-0002", b"newer")
    store.save("planeteer-run-8-a1-0001", b"another run")

    assert store.restore("planeteer-run-9-a2-0001", ["planeteer-run-9-"]) == (
        "planeteer-run-9-a1-0002",
        b"newer",
    )
    assert store.restore("planeteer-run-9-a1-0001", ["planeteer-run-9-"]) == (
        "planeteer-run-9-a1-0001",
        b"oldest",
    )
    # Like actions/cache, the key itself also matches as a prefix before the restore prefixes are tried.
    assert store.restore("planeteer-run-8", ["planeteer-run-9-"]) == (
        "planeteer-run-8-a1-0001",
        b"another run",
    )
    assert store.restore("planeteer-run-7", ["planeteer-run-6-", "planeteer-run-9-a1-0001"]) == (
        "planeteer-run-9-a1-0001",
        b"oldest",
    )


def test_a_miss_is_none(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    store = cache(fake, sleeps)
    store.save("planeteer-run-9", b"x")

    assert store.restore("planeteer-run-10", ["planeteer-run-11-"]) is None


def test_the_cache_survives_rerun_all_jobs(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    cache(fake, sleeps, attempt=1).save("planeteer-run-9-a1-0003", b"before the re-run")

    attempt = fake.rerun_all_jobs(9)

    assert cache(fake, sleeps, attempt=attempt).restore("planeteer-run-9-a2-0001", ["planeteer-run-9-"]) == (
        "planeteer-run-9-a1-0003",
        b"before the re-run",
    )


def test_from_env_follows_the_runners_v2_flag_as_actions_cache_does(fake: FakeGitHubServices) -> None:
    env = fake.runtime_env(9)
    assert env["ACTIONS_CACHE_SERVICE_V2"] == "True"  # bool.TrueString, as the runner writes it
    assert "ACTIONS_CACHE_SERVICE_VERSION" not in env  # no runner sets it
    assert ActionsCache.from_env(env) is not None
    assert ActionsCache.from_env({**env, "ACTIONS_CACHE_SERVICE_V2": "1"}) is not None  # any non-empty value
    assert ActionsCache.from_env(without(env, "ACTIONS_CACHE_SERVICE_V2")) is None
    assert ActionsCache.from_env(without(env, "ACTIONS_RUNTIME_TOKEN")) is None
    assert ActionsCache.from_env(without(env, "ACTIONS_RESULTS_URL")) is None


@pytest.mark.parametrize(
    "server_url, offered",
    [
        ("https://github.com", True),
        ("https://octo.ghe.com", True),  # GHE.com data residency
        ("http://github.localhost:8080", True),
        ("https://ghes.example.internal", False),  # GitHub Enterprise Server: v1 only, even with the flag
    ],
)
def test_github_enterprise_server_gets_no_v2_cache(fake: FakeGitHubServices, server_url: str, offered: bool) -> None:
    env = {**fake.runtime_env(9), "GITHUB_SERVER_URL": server_url}
    assert (ActionsCache.from_env(env) is not None) is offered


@pytest.mark.parametrize(
    "mode, can_read, can_save",
    [
        ("", True, True),
        ("write", True, True),
        ("read", True, False),
        ("write-only", False, True),
        (" READ ", True, False),  # trimmed and lower-cased, as getCacheMode() does
        ("something-new", True, True),  # unknown modes are permissive in @actions/cache
    ],
)
def test_the_cache_mode_gates_reads_and_writes(
    fake: FakeGitHubServices, mode: str, can_read: bool, can_save: bool
) -> None:
    store = ActionsCache.from_env({**fake.runtime_env(9), "ACTIONS_CACHE_MODE": mode})
    assert store is not None
    assert (store.can_read, store.can_save) == (can_read, can_save)


def test_cache_mode_none_means_no_cache(fake: FakeGitHubServices) -> None:
    assert ActionsCache.from_env({**fake.runtime_env(9), "ACTIONS_CACHE_MODE": "none"}) is None


def without(env: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != name}


def test_transient_failures_are_retried(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    fake.fail_next("CreateCacheEntry", 503)
    fake.fail_next("/actions-cache/", 502, times=2)
    fake.fail_next("FinalizeCacheEntryUpload", 0)
    fake.fail_next("GetCacheEntryDownloadURL", 429)
    store = cache(fake, sleeps)

    assert store.save("planeteer-run-9", b"payload") is True
    assert store.restore("planeteer-run-9", []) == ("planeteer-run-9", b"payload")
    assert len(sleeps) == 5


def test_gives_up_after_five_attempts(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    fake.fail_next("GetCacheEntryDownloadURL", 500, times=5)

    with pytest.raises(ActionsCacheError, match="GetCacheEntryDownloadURL failed after 5 attempts: HTTP 500"):
        cache(fake, sleeps).restore("planeteer-run-9", [])
    assert len(sleeps) == 4


def test_keys_are_checked_like_actions_cache_does(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    store = cache(fake, sleeps)
    with pytest.raises(ActionsCacheError, match="without commas"):
        store.save("a,b", b"x")
    with pytest.raises(ActionsCacheError, match="1 to 512 characters"):
        store.save("k" * 513, b"x")
    with pytest.raises(ActionsCacheError, match="at most 10 cache keys"):
        store.restore("k", [f"p{i}" for i in range(10)])
    assert fake.requests == []


def test_no_secret_reaches_errors_or_logs(
    fake: FakeGitHubServices, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env = fake.runtime_env(9)
    store = ActionsCache.from_env(env, retry=RetryPolicy(sleep=sleeps.append))
    assert store is not None
    store.save("planeteer-run-9", b"x")
    fake.fail_next("/actions-cache/", 503, times=5)
    fake.fail_next("CreateCacheEntry", 401)

    errors = []
    for call in (lambda: store.restore("planeteer-run-9", []), lambda: store.save("planeteer-run-10", b"y")):
        with pytest.raises(ActionsCacheError) as caught:
            call()
        errors.append(str(caught.value))

    token = env["ACTIONS_RUNTIME_TOKEN"]
    for text in [*errors, caplog.text, *(r.getMessage() for r in caplog.records)]:
        assert token not in text and "sig=" not in text
    assert "unauthenticated" in errors[1]
