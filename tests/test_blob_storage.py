"""Uploads as @actions/artifact makes them, against a blob host that takes exactly what Azure takes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from fakes.github_services import ARTIFACT_SERVICE, FakeGitHubServices

from planeteer_action import __version__
from planeteer_action.github._twirp import HttpTransport, RetryPolicy, backend_ids_from_token
from planeteer_action.github.artifacts import ArtifactService, ArtifactServiceError
from planeteer_action.github.blob_storage import AZURE_STORAGE_VERSION, BLOCK_SIZE, get_blob

MIB = 1024 * 1024


@pytest.fixture
def fake() -> Iterator[FakeGitHubServices]:
    with FakeGitHubServices() as services:
        yield services


def service(fake: FakeGitHubServices, sleeps: list[float]) -> ArtifactService:
    found = ArtifactService.from_env(fake.runtime_env(101), retry=RetryPolicy(sleep=sleeps.append))
    assert found is not None
    return found


def a_zip(size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("payload.bin", bytes(range(256)) * (size // 256))
    return buffer.getvalue()


def blob_writes(fake: FakeGitHubServices) -> list[dict[str, str]]:
    return [{**r.headers, "?": r.query} for r in fake.requests if r.method == "PUT" and r.host.startswith("localhost")]


def test_a_small_artifact_is_one_put_blob_declared_as_a_zip(fake: FakeGitHubServices) -> None:
    data = a_zip(4096)
    service(fake, []).upload("planeteer-small", data)

    (write,) = blob_writes(fake)
    assert write["x-ms-blob-type"] == "BlockBlob"
    assert write["x-ms-version"] == AZURE_STORAGE_VERSION
    assert write["content-type"] == "application/zip"
    (artifact,) = fake.artifacts
    assert (artifact.version, artifact.mime_type) == (7, "application/zip")  # as @actions/artifact 6.x sends
    assert artifact.blob_state.content_type == "application/zip"
    assert artifact.blob_state.requests == ["PutBlob"]


def test_a_large_artifact_goes_up_in_8_mib_blocks_and_one_block_list(fake: FakeGitHubServices) -> None:
    data = a_zip(2 * BLOCK_SIZE + 3 * MIB)
    artifacts = service(fake, [])
    artifacts.upload("planeteer-large", data)

    (artifact,) = fake.artifacts
    assert BLOCK_SIZE == 8 * MIB
    assert artifact.blob_state.requests == ["PutBlock", "PutBlock", "PutBlock", "PutBlockList"]
    assert [len(block) for _, block in artifact.blob_state.committed] == [
        BLOCK_SIZE,
        BLOCK_SIZE,
        len(data) - 2 * BLOCK_SIZE,
    ]
    assert artifact.blob_state.content_type == "application/zip"
    assert artifact.digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert all(w["x-ms-version"] == AZURE_STORAGE_VERSION for w in blob_writes(fake))
    assert artifacts.download("planeteer-large") == data


def test_every_call_names_planeteer_and_its_version(fake: FakeGitHubServices) -> None:
    artifacts = service(fake, [])
    artifacts.upload("planeteer-ua", a_zip(1024))
    artifacts.download("planeteer-ua")

    assert {r.headers.get("user-agent") for r in fake.requests} == {f"planeteer/{__version__}"}


@pytest.mark.parametrize("header", ["7", "HTTP-DATE"])
def test_retries_wait_as_long_as_retry_after_says(fake: FakeGitHubServices, header: str) -> None:
    if header == "HTTP-DATE":
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=9), usegmt=True)
    sleeps: list[float] = []
    fake.fail_next("CreateArtifact", 429, retry_after=header)
    fake.fail_next("/actions-results/", 503, retry_after=header)

    service(fake, sleeps).upload("planeteer-throttled", a_zip(1024))

    assert len(sleeps) == 2
    assert all(6.0 <= s <= 60.0 for s in sleeps), sleeps  # the policy alone would wait 1-2 s


def test_an_absurd_retry_after_is_capped(fake: FakeGitHubServices) -> None:
    sleeps: list[float] = []
    fake.fail_next("CreateArtifact", 503, retry_after="86400")
    service(fake, sleeps).upload("planeteer-capped", a_zip(1024))
    assert sleeps == [60.0]


# -- the fake blob host refuses what Azure refuses ---------------------------------------------------------


def signed_upload_url(fake: FakeGitHubServices) -> str:
    env = fake.runtime_env(5)
    ids = backend_ids_from_token(env["ACTIONS_RUNTIME_TOKEN"])
    assert ids is not None
    answer = requests.post(
        f"{fake.results_url}twirp/{ARTIFACT_SERVICE}/CreateArtifact",
        json={**ids.fields(), "name": "raw", "version": 7},
        headers={"Authorization": f"Bearer {env['ACTIONS_RUNTIME_TOKEN']}"},
        timeout=10,
    )
    return str(answer.json()["signed_upload_url"])


def put(url: str, body: bytes, **headers: str) -> requests.Response:
    return requests.put(url, data=body, headers=headers, timeout=10)


def test_the_fake_refuses_what_azure_refuses(fake: FakeGitHubServices) -> None:
    url = signed_upload_url(fake)
    block = "YmxvY2stMDAwMQ=="  # base64("block-0001")

    def refused(response: requests.Response) -> str:
        assert response.status_code >= 400, response.status_code
        return response.headers["x-ms-error-code"]

    assert refused(put(url, b"x")) == "MissingRequiredHeader"  # Put Blob without x-ms-blob-type
    assert refused(put(url, b"x", **{"x-ms-blob-type": "AppendBlob"})) == "InvalidHeaderValue"
    assert refused(put(url, b"x", **{"x-ms-blob-type": "BlockBlob", "x-ms-version": "2099-01-01"})) == (
        "InvalidHeaderValue"
    )
    assert refused(put(f"{url}&comp=block", b"x")) == "MissingRequiredQueryParameter"
    assert refused(put(f"{url}&comp=block&blockid=not*base64", b"x")) == "InvalidQueryParameterValue"
    assert put(f"{url}&comp=block&blockid={block}", b"first").status_code == 201
    assert refused(put(f"{url}&comp=block&blockid=YQ%3D%3D", b"x")) == "InvalidBlobOrBlock"  # another id length
    assert refused(put(f"{url}&comp=blocklist", b"<BlockList><Latest>")) == "InvalidXmlDocument"
    unknown = b"<BlockList><Latest>b3RoZXItMDAwMQ==</Latest></BlockList>"
    assert refused(put(f"{url}&comp=blocklist", unknown)) == "InvalidBlockList"
    assert refused(put(f"{url}&comp=appendblock", b"x")) == "InvalidQueryParameterValue"

    committed = f"<BlockList><Latest>{block}</Latest></BlockList>".encode()
    assert put(f"{url}&comp=blocklist", committed, **{"x-ms-blob-content-type": "application/zip"}).status_code == 201
    (artifact,) = fake.artifacts
    assert (artifact.data, artifact.blob_state.content_type) == (b"first", "application/zip")


# -- downloads ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def one_raw_answer(answer: bytes) -> Iterator[str]:
    """A loopback HTTP server that answers one request with `answer`, byte for byte, then hangs up."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/blob?sig=secret"
    finally:
        thread.join(timeout=5)
        listener.close()


def transport() -> HttpTransport:
    return HttpTransport(requests.Session(), RetryPolicy(sleep=lambda _: None), ArtifactServiceError, ())


@pytest.mark.parametrize("declared", [True, False], ids=["declared size", "read to the end"])
def test_a_download_that_breaks_off_is_one_clear_error(declared: bool) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + (b"Content-Length: 1000\r\n" if declared else b"Connection: close\r\n")
    body = b"x" * 400
    with one_raw_answer(head + b"\r\n" + body) as url:
        if declared:
            with pytest.raises(ArtifactServiceError, match=r"^download: the download from 127\.0\.0\.1:\d+ broke off"):
                get_blob(transport(), "download", url)
        else:  # nothing says how long it is: what came is all there is
            assert get_blob(transport(), "download", url) == body


def test_a_download_of_no_declared_size_is_cut_at_the_limit() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 3000
    with one_raw_answer(answer) as url, pytest.raises(ArtifactServiceError, match="exceeds the limit of 1000 bytes"):
        get_blob(transport(), "download", url, max_bytes=1000)
