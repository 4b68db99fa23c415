"""RunArtifacts against the fake REST API: every attempt of a run, re-runs, the 302 download, GHES."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import requests
from fakes.github_services import FakeGitHubServices

from planeteer_action.github._twirp import RetryPolicy
from planeteer_action.github.artifacts import ArtifactService
from planeteer_action.github.run_artifacts import RunArtifacts, RunArtifactsError

RUN = 4321


def upload(fake: FakeGitHubServices, attempt: int, name: str, data: bytes, run_id: int = RUN) -> int:
    service = ArtifactService.from_env(fake.runtime_env(run_id, attempt))
    assert service is not None
    return service.upload(name, data)


def rest(fake: FakeGitHubServices, sleeps: list[float], api_url: str | None = None) -> RunArtifacts:
    policy = RetryPolicy(base_delay=0.0, sleep=sleeps.append)
    return RunArtifacts(fake.rest_token, fake.repository, api_url or fake.api_url, retry=policy)


def test_lists_every_attempt_of_the_run(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    upload(fake, 1, "planeteer-state-a1-0001", b"one")
    upload(fake, 2, "planeteer-state-a2-0001", b"two!")
    upload(fake, 2, "unrelated", b"x")
    upload(fake, 1, "planeteer-state-other-run", b"x", run_id=RUN + 1)

    listed = rest(fake, sleeps).list(RUN, "planeteer-state-")

    assert sorted((a.name, a.size, a.expired) for a in listed) == [
        ("planeteer-state-a1-0001", 3, False),
        ("planeteer-state-a2-0001", 4, False),
    ]
    assert all(a.created_at is not None for a in listed)
    assert {a.name for a in rest(fake, sleeps).list(RUN)} == {
        "planeteer-state-a1-0001",
        "planeteer-state-a2-0001",
        "unrelated",
    }


def test_rerun_all_jobs_removes_earlier_attempts(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    upload(fake, 1, "planeteer-state-a1-0001", b"one")

    attempt = fake.rerun_all_jobs(RUN)
    upload(fake, attempt, "planeteer-state-a2-0001", b"two")

    assert [a.name for a in rest(fake, sleeps).list(RUN, "planeteer-state-")] == ["planeteer-state-a2-0001"]


def test_lists_across_pages(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    service = ArtifactService.from_env(fake.runtime_env(RUN))
    assert service is not None
    for index in range(103):
        service.upload(f"planeteer-state-a1-{index:04d}", b"x")

    listed = rest(fake, sleeps).list(RUN, "planeteer-state-")

    assert len(listed) == 103
    pages = [r for r in fake.requests if r.path.endswith(f"/runs/{RUN}/artifacts")]
    assert len(pages) == 2 and "per_page=100" in pages[0].query


def test_listing_asks_for_the_artifact_pages_alone(
    fake: FakeGitHubServices, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """A restore lists before it can fetch anything: one request per page of the run's artifacts, neither the
    repository nor the run looked up first (each another round trip), and no pause between the pages (PyGithub
    logs each pause it takes)."""
    caplog.set_level(logging.DEBUG, logger="github")
    service = ArtifactService.from_env(fake.runtime_env(RUN))
    assert service is not None
    for index in range(103):
        service.upload(f"planeteer-state-a1-{index:04d}", b"x")
    before = len(fake.requests)

    assert len(rest(fake, sleeps).list(RUN, "planeteer-state-")) == 103

    asked = [r.path for r in fake.requests[before:]]
    assert asked == [f"/repos/{fake.repository}/actions/runs/{RUN}/artifacts"] * 2
    assert not [r.getMessage() for r in caplog.records if "sleeping" in r.getMessage()]


def test_download_follows_the_redirect_without_the_token(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    artifact_id = upload(fake, 1, "planeteer-state-a1-0001", b"zip bytes")

    assert rest(fake, sleeps).download(artifact_id) == b"zip bytes"

    api_call, blob_call = fake.requests[-2:]
    assert api_call.path.endswith(f"/actions/artifacts/{artifact_id}/zip") and api_call.status == 302
    assert api_call.headers["authorization"] == f"Bearer {fake.rest_token}"
    assert blob_call.host.startswith("localhost:") and blob_call.status == 200
    assert "authorization" not in blob_call.headers
    assert all(fake.rest_token not in value for value in blob_call.headers.values())


def test_the_blob_host_refuses_the_token(fake: FakeGitHubServices) -> None:
    artifact_id = upload(fake, 1, "state", b"secret bytes")
    auth = {"Authorization": f"token {fake.rest_token}"}
    zip_url = f"{fake.api_url}/repos/{fake.repository}/actions/artifacts/{artifact_id}/zip"
    location = requests.get(zip_url, headers=auth, allow_redirects=False).headers["Location"]

    assert requests.get(location, headers=auth).status_code == 403
    assert requests.get(location).content == b"secret bytes"
    # requests itself drops the header on a cross-host redirect, which the fake models with its blob host.
    assert requests.get(zip_url, headers=auth).content == b"secret bytes"


def test_download_refuses_artifacts_over_the_limit(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    artifact_id = upload(fake, 1, "state", b"x" * 100)

    with pytest.raises(RunArtifactsError, match="100 bytes is more than the limit of 10 bytes"):
        rest(fake, sleeps).download(artifact_id, max_bytes=10)
    assert rest(fake, sleeps).download(artifact_id, max_bytes=100) == b"x" * 100


def test_download_is_retried_on_server_errors(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    artifact_id = upload(fake, 1, "state", b"payload")
    fake.fail_next(f"/repos/{fake.repository}/actions/artifacts/", 502)
    fake.fail_next("/actions-results/", 503)

    assert rest(fake, sleeps).download(artifact_id) == b"payload"
    assert len(sleeps) == 2


def test_listing_is_retried_on_server_errors(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    upload(fake, 1, "state", b"payload")
    fake.fail_next(f"/repos/{fake.repository}/actions/runs/{RUN}/artifacts", 503, times=2)

    assert [a.name for a in rest(fake, sleeps).list(RUN)] == ["state"]


def test_listing_gives_up_after_five_attempts(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    upload(fake, 1, "state", b"payload")
    fake.fail_next(f"/repos/{fake.repository}/actions/runs/{RUN}/artifacts", 503, times=5)

    with pytest.raises(RunArtifactsError, match=f"listing the artifacts of run {RUN}.*no usable answer"):
        rest(fake, sleeps).list(RUN)
    assert sum(1 for r in fake.requests if r.path.endswith(f"/runs/{RUN}/artifacts")) == 5


def test_expired_artifacts_are_flagged_and_not_downloadable(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    artifact_id = upload(fake, 1, "state", b"old")
    fake.artifacts[0].expired = True

    assert [a.expired for a in rest(fake, sleeps).list(RUN)] == [True]
    with pytest.raises(RunArtifactsError, match=r"has expired \(HTTP 410\)"):
        rest(fake, sleeps).download(artifact_id)


def test_errors_name_the_fix_and_never_the_token(
    fake: FakeGitHubServices, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    artifact_id = upload(fake, 1, "state", b"x")
    bad = RunArtifacts(
        "ghs_wrongtoken0123456789", fake.repository, fake.api_url, retry=RetryPolicy(sleep=sleeps.append)
    )
    errors: list[RunArtifactsError] = []

    def failure(call: Callable[[], object]) -> None:
        with pytest.raises(RunArtifactsError) as caught:
            call()
        errors.append(caught.value)

    failure(lambda: bad.list(RUN))
    failure(lambda: bad.download(artifact_id))
    fake.fail_next(f"/repos/{fake.repository}/actions/runs/{RUN}", 403)
    failure(lambda: rest(fake, sleeps).list(RUN))
    fake.fail_next(f"/repos/{fake.repository}/actions/artifacts/{artifact_id}/zip", 403)
    failure(lambda: rest(fake, sleeps).download(artifact_id))
    failure(lambda: rest(fake, sleeps).list(999))
    failure(lambda: rest(fake, sleeps).download(123456))

    assert [e.status for e in errors] == [401, 401, 403, 403, 404, 404]
    assert "pass a valid token" in str(errors[0]) and "pass a valid token" in str(errors[1])
    for error in errors[2:]:
        assert "give the workflow `permissions: actions: read`" in str(error)
    assert "run 999" in str(errors[4])
    for text in [*(str(e) for e in errors), caplog.text, *(r.getMessage() for r in caplog.records)]:
        assert fake.rest_token not in text and "ghs_wrongtoken0123456789" not in text and "sig=" not in text
    assert all("\n" not in str(e) for e in errors)


def test_github_enterprise_server_base_url(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    artifact_id = upload(fake, 1, "planeteer-state-a1-0001", b"on ghes")
    client = rest(fake, sleeps, api_url=fake.ghes_api_url + "/")

    assert [a.id for a in client.list(RUN, "planeteer-state-")] == [artifact_id]
    assert client.download(artifact_id) == b"on ghes"
    api_paths = [r.path for r in fake.requests if r.host.startswith("127.0.0.1") and not r.path.startswith("/twirp")]
    assert api_paths and all(path.startswith("/api/v3/repos/octo-org/planeteer") for path in api_paths)


def test_repository_must_be_owner_slash_name() -> None:
    with pytest.raises(RunArtifactsError, match="OWNER/NAME"):
        RunArtifacts("token", "just-a-name")
