"""ArtifactService against the fake results service: round trips, retries, immutability, no leaked secrets."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests
from fakes.github_services import ARTIFACT_SERVICE, Exchange, FakeGitHubServices

from planeteer_action.github._twirp import RetryPolicy, backend_ids_from_token
from planeteer_action.github.artifacts import ArtifactService, ArtifactServiceError

ROOT = Path(__file__).resolve().parents[1]


def service(fake: FakeGitHubServices, sleeps: list[float], run_id: int = 101, attempt: int = 1) -> ArtifactService:
    found = ArtifactService.from_env(fake.runtime_env(run_id, attempt), retry=RetryPolicy(sleep=sleeps.append))
    assert found is not None
    return found


def twirp_calls(fake: FakeGitHubServices, method: str) -> int:
    return sum(1 for r in fake.requests if r.path.endswith(f"/{method}"))


def test_upload_list_download_delete_round_trip(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    artifacts = service(fake, sleeps)
    data = b"checkpoint\x00bytes" * 100

    artifact_id = artifacts.upload("planeteer-state-a1-0001", data)
    artifacts.upload("other-artifact", b"x")

    listed = artifacts.list("planeteer-state-")
    assert [(a.id, a.name, a.size) for a in listed] == [(artifact_id, "planeteer-state-a1-0001", len(data))]
    assert listed[0].digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert listed[0].created_at is not None and listed[0].created_at.tzinfo is not None
    assert {a.name for a in artifacts.list()} == {"planeteer-state-a1-0001", "other-artifact"}
    assert artifacts.download("planeteer-state-a1-0001") == data

    artifacts.delete("planeteer-state-a1-0001")
    artifacts.delete("planeteer-state-a1-0001")  # already gone: not an error

    assert artifacts.list("planeteer-state-") == []
    with pytest.raises(ArtifactServiceError, match="no artifact named 'planeteer-state-a1-0001'") as caught:
        artifacts.download("planeteer-state-a1-0001")
    assert caught.value.code == "not_found"
    assert sleeps == []


def test_requests_follow_the_protocol(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    service(fake, sleeps).upload("state", b"abc")

    create, put, finalize = fake.requests
    assert create.path == f"/twirp/{ARTIFACT_SERVICE}/CreateArtifact"
    assert create.headers["authorization"].startswith("Bearer ey")
    assert put.method == "PUT" and put.headers["x-ms-blob-type"] == "BlockBlob"
    assert put.host.startswith("localhost:") and "authorization" not in put.headers
    assert b'"size": "3"' in finalize.body  # int64 travels as a string
    assert f'"hash": "sha256:{hashlib.sha256(b"abc").hexdigest()}"'.encode() in finalize.body


def test_from_env_needs_the_runtime_token_and_results_url(fake: FakeGitHubServices) -> None:
    env = fake.runtime_env(1)
    assert ArtifactService.from_env({}) is None
    assert ArtifactService.from_env({"ACTIONS_RUNTIME_TOKEN": env["ACTIONS_RUNTIME_TOKEN"]}) is None
    assert ArtifactService.from_env({"ACTIONS_RESULTS_URL": env["ACTIONS_RESULTS_URL"]}) is None


def test_a_token_without_the_results_scope_is_refused_without_echoing_it(fake: FakeGitHubServices) -> None:
    with pytest.raises(ArtifactServiceError, match=r"Actions\.Results scope") as caught:
        ArtifactService(fake.results_url, "not-a-jwt-but-a-secret")
    assert "not-a-jwt-but-a-secret" not in str(caught.value)


def test_duplicate_name_in_the_same_attempt_is_a_clear_error(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    artifacts = service(fake, sleeps)
    artifacts.upload("state-1", b"first")

    with pytest.raises(ArtifactServiceError, match="'state-1' already exists in this run attempt") as caught:
        artifacts.upload("state-1", b"second")

    assert caught.value.code == "already_exists" and caught.value.status == 409
    assert artifacts.download("state-1") == b"first"


def test_a_failed_upload_still_reserves_the_name(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    artifacts = service(fake, sleeps)
    fake.fail_next("/actions-results/", 403)

    with pytest.raises(ArtifactServiceError, match="blob storage answered HTTP 403"):
        artifacts.upload("state-1", b"lost")
    with pytest.raises(ArtifactServiceError, match="already exists"):
        artifacts.upload("state-1", b"again")
    assert artifacts.list() == []


def test_other_jobs_of_the_attempt_see_the_artifact_but_not_other_attempts(
    fake: FakeGitHubServices, sleeps: list[float]
) -> None:
    service(fake, sleeps, attempt=1).upload("state-1", b"one")
    other_job = ArtifactService.from_env(fake.runtime_env(101, 1, job="report"))
    assert other_job is not None
    assert [a.name for a in other_job.list()] == ["state-1"]

    second_attempt = service(fake, sleeps, attempt=2)
    assert second_attempt.list() == []
    second_attempt.upload("state-1", b"two")  # the name is free again in a new attempt
    assert second_attempt.download("state-1") == b"two"


def test_transient_failures_are_retried_with_growing_waits(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    fake.fail_next("CreateArtifact", 503, times=2)
    fake.fail_next("/actions-results/", 500)
    fake.fail_next("FinalizeArtifact", 429)
    fake.fail_next("ListArtifacts", 0)  # connection dropped
    fake.fail_next("GetSignedArtifactURL", 502)
    artifacts = service(fake, sleeps)

    artifacts.upload("state-1", b"payload")

    assert [a.name for a in artifacts.list()] == ["state-1"]
    assert artifacts.download("state-1") == b"payload"
    assert twirp_calls(fake, "CreateArtifact") == 3
    assert len(sleeps) == 6
    assert sleeps[1] >= sleeps[0] > 0


def test_gives_up_after_five_attempts(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    fake.fail_next("ListArtifacts", 503, times=5)

    with pytest.raises(ArtifactServiceError, match="ListArtifacts failed after 5 attempts: HTTP 503") as caught:
        service(fake, sleeps).list()

    assert caught.value.status == 503
    assert twirp_calls(fake, "ListArtifacts") == 5
    assert len(sleeps) == 4 and sleeps == sorted(sleeps)


def test_client_errors_are_not_retried(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    fake.fail_next("CreateArtifact", 403)

    with pytest.raises(ArtifactServiceError, match="CreateArtifact failed: HTTP 403 permission_denied"):
        service(fake, sleeps).upload("state", b"x")
    assert sleeps == []


def test_invalid_names_are_refused_before_any_call(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    artifacts = service(fake, sleeps)
    with pytest.raises(ArtifactServiceError, match="characters the service rejects"):
        artifacts.upload("state/1", b"x")
    with pytest.raises(ArtifactServiceError, match="must not be empty"):
        artifacts.upload("", b"x")
    assert fake.requests == []


def test_no_secret_reaches_errors_or_logs(
    fake: FakeGitHubServices, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env = fake.runtime_env(101)
    token = env["ACTIONS_RUNTIME_TOKEN"]
    artifacts = service(fake, sleeps)
    artifacts.upload("state-1", b"x")
    errors: list[str] = []

    fake.fail_next("/actions-results/", 503, times=5)  # the signed download URL keeps failing
    fake.fail_next("CreateArtifact", 0, times=5)  # connections dropped
    fake.fail_next("DeleteArtifact", 401)
    for attempt in (
        lambda: artifacts.download("state-1"),
        lambda: artifacts.upload("state-2", b"y"),
        lambda: artifacts.delete("state-1"),
        lambda: artifacts.upload("state-1", b"duplicate"),
    ):
        with pytest.raises(ArtifactServiceError) as caught:
            attempt()
        errors.append(str(caught.value))

    signatures = [r.query for r in fake.requests if r.query]
    assert signatures, "the blob requests carried signed queries"
    logged = [caplog.text, *(record.getMessage() for record in caplog.records)]
    for text in [*errors, *logged]:
        assert token not in text
        assert token.split(".")[1] not in text
        assert "sig=" not in text
        assert all(query not in text for query in signatures)
    assert all("\n" not in error for error in errors)
    assert "failed after 5 attempts" in errors[0] and "?<redacted>" not in errors[0]


def test_the_fake_checks_size_and_hash_on_finalize(fake: FakeGitHubServices) -> None:
    env = fake.runtime_env(5)
    headers = {"Authorization": f"Bearer {env['ACTIONS_RUNTIME_TOKEN']}"}
    url = f"{fake.results_url}twirp/{ARTIFACT_SERVICE}/"
    scope = backend_ids_from_token(env["ACTIONS_RUNTIME_TOKEN"])
    assert scope is not None
    ids = scope.fields()
    created = requests.post(url + "CreateArtifact", json={**ids, "name": "n", "version": 4}, headers=headers)
    upload_url = created.json()["signed_upload_url"]
    assert requests.put(upload_url, data=b"abc").status_code == 400  # no x-ms-blob-type
    block_blob = {"x-ms-blob-type": "BlockBlob"}
    assert requests.put(upload_url.split("sig=")[0], data=b"abc", headers=block_blob).status_code == 403
    assert requests.put(upload_url, data=b"abc", headers=block_blob).status_code == 201

    def finalize(**fields: str) -> requests.Response:
        return requests.post(url + "FinalizeArtifact", json={**ids, "name": "n", **fields}, headers=headers)

    assert finalize(size="4").json()["code"] == "invalid_argument"
    assert finalize(size="3", hash="sha256:" + "0" * 64).json()["code"] == "invalid_argument"
    assert finalize(size="3", sizes="3").json()["code"] == "malformed"  # a misspelt field fails loudly
    assert finalize(size="3", hash=f"sha256:{hashlib.sha256(b'abc').hexdigest()}").json()["ok"] is True
    assert requests.put(upload_url, data=b"new", headers=block_blob).status_code == 409  # sealed
    assert requests.post(url + "ListArtifacts", json=ids, headers={"Authorization": "Bearer nope"}).status_code == 401


class Metered(FakeGitHubServices):
    """What the bench's metering subclass relies on: every exchange told once answered, blob bodies kept out
    of the request log."""

    def __init__(self) -> None:
        super().__init__(log_blob_bodies=False)
        self.exchanges: list[Exchange] = []

    def served(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)


def test_a_metering_subclass_sees_every_exchange_and_the_log_keeps_no_blob_body(sleeps: list[float]) -> None:
    fake = Metered()
    with fake:
        artifacts = service(fake, sleeps)
        artifacts.upload("metered", b"m" * 5000)
        assert artifacts.download("metered") == b"m" * 5000

    kinds = [(e.method, e.path.rsplit("/", 1)[-1] if e.path.startswith("/twirp/") else "blob") for e in fake.exchanges]
    assert kinds == [
        ("POST", "CreateArtifact"), ("PUT", "blob"), ("POST", "FinalizeArtifact"),
        ("POST", "GetSignedArtifactURL"), ("GET", "blob"),
    ]  # fmt: skip
    upload, download = fake.exchanges[1], fake.exchanges[4]
    assert (len(upload.body), upload.status, download.answer_bytes, download.status) == (5000, 201, 5000, 200)
    assert all(e.arrived <= e.answered for e in fake.exchanges)
    assert [len(r.body) for r in fake.requests if r.host.startswith("localhost")] == [0, 0]
    assert all(r.body for r in fake.requests if r.path.startswith("/twirp/"))


def test_a_subprocess_uploads_to_the_same_fake(fake: FakeGitHubServices, sleeps: list[float]) -> None:
    env = {**os.environ, **fake.runtime_env(77), "PYTHONPATH": str(ROOT)}
    script = textwrap.dedent(
        """
        import os
        from planeteer_action.github.artifacts import ArtifactService
        print(ArtifactService.from_env(os.environ).upload("from-child", b"child bytes"))
        """
    )
    child = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)

    assert child.returncode == 0, child.stderr
    assert service(fake, sleeps, run_id=77).download("from-child") == b"child bytes"
