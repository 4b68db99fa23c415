"""A loopback stand-in for the GitHub services the action uses, strict enough to catch protocol slips.

One ThreadingHTTPServer (port 0, on a daemon thread) speaks:

- the twirp ArtifactService and CacheService of the Actions results service, at http://127.0.0.1:PORT,
  with the request fields of actions/toolkit's generated results/api/v1 protos (unknown fields are
  rejected, which the real service would ignore, so that a misspelt field fails loudly);
- Azure-style blob storage behind signed URLs, at http://localhost:PORT: another host name, as the real
  blob host differs from the API host, so a client that forwards credentials there is caught. It rejects
  any request that carries an Authorization header or a token;
- the REST endpoints for the repository, its workflow runs and their artifacts (302 to the blob for a
  download), and its pull requests (`pulls`, fakes/pulls.py), at the root and under the GitHub Enterprise
  Server prefix /api/v3. `user_permissions` set: GET /repos answers `permissions` as for a user's token.

Runs have attempts. `runtime_env(run, attempt, job)` mints that job's runtime token, a JWT whose `scp`
claim names the attempt's and job's backend ids; twirp calls see only their own attempt, REST sees every
attempt of the run, and `rerun_all_jobs` deletes earlier attempts' artifacts but keeps the cache.
Everything is plain HTTP, so a subprocess given that env talks to the same fake.

Inspection: `artifacts`, `cache_entries`, `requests` (header names lower-cased; blob bodies left out with
`log_blob_bodies=False`, for a run that moves gigabytes). Metering: a subclass overrides `served`, told of
every request once its answer's last byte is written (`Exchange`: sizes and times). Faults:
`fail_next(target, status, times)` answers the next matching requests with `status` (0 drops the
connection); `target` is a twirp method name ("CreateArtifact") or a path prefix ("/repos/", "/actions-
results/" for artifact blobs, "/actions-cache/" for cache blobs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fakes import azure_blob
from fakes.azure_blob import AzureBlob
from fakes.pulls import FakePulls

ARTIFACT_SERVICE = "github.actions.results.api.v1.ArtifactService"
CACHE_SERVICE = "github.actions.results.api.v1.CacheService"
GHES_PREFIX = "/api/v3"
GHES_SERVER_URL = "https://ghes.example.internal"
ARTIFACT_BLOBS = "/actions-results/"
CACHE_BLOBS = "/actions-cache/"
_REPOSITORY_ID = 4242
_HEAD_SHA = "4f9d2c1e0b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e"

_RUN_AND_JOB = {"workflow_run_backend_id", "workflow_job_run_backend_id"}
# The fields of each request message (results/api/v1/artifact.proto and cache.proto).
_REQUEST_FIELDS = {
    "CreateArtifact": _RUN_AND_JOB | {"name", "expires_at", "version", "mime_type"},
    "FinalizeArtifact": _RUN_AND_JOB | {"name", "size", "hash"},
    "ListArtifacts": _RUN_AND_JOB | {"name_filter", "id_filter"},
    "GetSignedArtifactURL": _RUN_AND_JOB | {"name"},
    "DeleteArtifact": _RUN_AND_JOB | {"name"},
    "CreateCacheEntry": {"metadata", "key", "version"},
    "FinalizeCacheEntryUpload": {"metadata", "key", "size_bytes", "version"},
    "GetCacheEntryDownloadURL": {"metadata", "key", "restore_keys", "version"},
}
# How twirp maps its error codes to HTTP statuses, inverted for injected faults.
_TWIRP_CODES = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    409: "already_exists",
    412: "failed_precondition",
    429: "resource_exhausted",
    500: "internal",
    501: "unimplemented",
    503: "unavailable",
}


@dataclass
class FakeArtifact:
    """An artifact as the service holds it; `finalized` ones are visible, `expired` can be set by tests."""

    id: int
    name: str
    run_id: int
    attempt: int
    job: str
    workflow_run_backend_id: str
    workflow_job_run_backend_id: str
    blob: str
    created_at: datetime
    data: bytes | None = None
    size: int = 0
    digest: str | None = None
    finalized: bool = False
    expired: bool = False
    mime_type: str | None = None
    version: int | None = None
    blob_state: AzureBlob = field(default_factory=AzureBlob)


@dataclass
class FakeCacheEntry:
    """A cache entry; it can be restored once `finalized`."""

    id: int
    key: str
    version: str
    blob: str
    created_at: datetime
    data: bytes | None = None
    size: int = 0
    finalized: bool = False
    blob_state: AzureBlob = field(default_factory=AzureBlob)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it; `status` 0 means the connection was dropped."""

    method: str
    host: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass(frozen=True)
class Exchange:
    """One request and its answer as they went over the wire, for a subclass that meters traffic (`served`).
    `status` 0 means the connection was dropped; times are `time.monotonic()`."""

    method: str
    path: str
    body: bytes  # the request's, whatever the log keeps
    status: int
    answer_bytes: int
    arrived: float  # its request line and headers were read
    answered: float  # the answer's last byte was written


@dataclass(frozen=True)
class _JobScope:
    run_id: int
    attempt: int
    job: str
    workflow_run_backend_id: str
    workflow_job_run_backend_id: str


@dataclass
class _Fault:
    target: str
    status: int
    remaining: int
    retry_after: str | None = None


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _TwirpFailure(Exception):
    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


class FakeGitHubServices:
    """The fake; use as a context manager (or `start()`/`stop()`)."""

    def __init__(
        self, repository: str = "octo-org/planeteer", *, rest_token: str | None = None, log_blob_bodies: bool = True
    ) -> None:
        self.repository = repository
        self._log_blob_bodies = log_blob_bodies
        self.rest_token = rest_token or f"ghs_{secrets.token_urlsafe(27)}"
        self._lock = threading.RLock()
        self._signing_key = secrets.token_bytes(32)
        self._scopes: dict[str, _JobScope] = {}
        self._attempts: dict[int, dict[int, str]] = {}
        self._artifacts: list[FakeArtifact] = []
        self._cache: list[FakeCacheEntry] = []
        self._blobs: dict[str, FakeArtifact | FakeCacheEntry] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._artifact_ids = itertools.count(7001)
        self._cache_ids = itertools.count(301)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.pulls = FakePulls(repository, "http://127.0.0.1:0")
        self.user_permissions: dict[str, bool] | None = None
        self._twirp_methods: dict[tuple[str, str], Callable[[_JobScope, dict[str, Any]], dict[str, Any]]] = {
            (ARTIFACT_SERVICE, "CreateArtifact"): self._create_artifact,
            (ARTIFACT_SERVICE, "FinalizeArtifact"): self._finalize_artifact,
            (ARTIFACT_SERVICE, "ListArtifacts"): self._list_artifacts,
            (ARTIFACT_SERVICE, "GetSignedArtifactURL"): self._signed_artifact_url,
            (ARTIFACT_SERVICE, "DeleteArtifact"): self._delete_artifact,
            (CACHE_SERVICE, "CreateCacheEntry"): self._create_cache_entry,
            (CACHE_SERVICE, "FinalizeCacheEntryUpload"): self._finalize_cache_entry,
            (CACHE_SERVICE, "GetCacheEntryDownloadURL"): self._cache_download_url,
        }

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FakeGitHubServices:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self.pulls.server = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-github-services",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGitHubServices:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake is not running"
        return int(self._server.server_address[1])

    @property
    def results_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def server_url(self) -> str:
        """GITHUB_SERVER_URL of a github.com job (only links are built from it)."""
        return "https://github.com"

    @property
    def ghes_api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{GHES_PREFIX}"

    # -- test helpers ----------------------------------------------------------------------------------

    def runtime_env(
        self, run_id: int, attempt: int = 1, job: str = "planeteer", *, ghes: bool = False
    ) -> dict[str, str]:
        """What the runner gives a node or docker action step of `job` in attempt `attempt` of run `run_id`
        about GitHub's services, and nothing the runner does not set. With `ghes`, a GitHub Enterprise Server
        job: no results service (no artifacts v4, no cache v2), REST under /api/v3."""
        with self._lock:
            run_backend_id = self._attempts.setdefault(run_id, {}).setdefault(attempt, str(uuid.uuid4()))
            job_backend_id = str(uuid.uuid5(uuid.UUID(run_backend_id), job))
            token = _mint_runtime_token(run_backend_id, job_backend_id)
            self._scopes[token] = _JobScope(run_id, attempt, job, run_backend_id, job_backend_id)
        env = {
            # actions/runner src/Runner.Worker/Handlers/NodeScriptActionHandler.cs:
            #   Environment["ACTIONS_RUNTIME_TOKEN"] = systemConnection.Authorization.Parameters[...AccessToken];
            "ACTIONS_RUNTIME_TOKEN": token,
            # github context keys, exported as GITHUB_<KEY> by src/Runner.Worker/GitHubContext.cs
            # (`_contextEnvAllowlist`: repository, run_id, run_attempt, job, api_url, server_url).
            "GITHUB_REPOSITORY": self.repository,
            "GITHUB_RUN_ID": str(run_id),
            "GITHUB_RUN_ATTEMPT": str(attempt),
            "GITHUB_JOB": job,
        }
        if ghes:
            # On GHES server_url and api_url name the server's own host (JobExtension derives server_url from
            # the runner's configured GitHubUrl when the job message has none).
            return {**env, "GITHUB_SERVER_URL": GHES_SERVER_URL, "GITHUB_API_URL": self.ghes_api_url}
        return {
            **env,
            # NodeScriptActionHandler.cs: `if (systemConnection.Data.TryGetValue("ResultsServiceUrl", out var
            # resultsUrl) && ...) Environment["ACTIONS_RESULTS_URL"] = resultsUrl;`
            "ACTIONS_RESULTS_URL": self.results_url,
            # NodeScriptActionHandler.cs: `if (ExecutionContext.Global.Variables.GetBoolean(
            # "actions_uses_cache_service_v2") ?? false) Environment["ACTIONS_CACHE_SERVICE_V2"] = bool.TrueString;`
            "ACTIONS_CACHE_SERVICE_V2": "True",
            "GITHUB_API_URL": self.api_url,
            # github.com's own server URL: the official clients' isGhes() keys on its host name.
            "GITHUB_SERVER_URL": self.server_url,
        }

    def rerun_all_jobs(self, run_id: int) -> int:
        """Start the next attempt of `run_id` the way "Re-run all jobs" does; returns its number.

        Earlier attempts' artifacts are deleted; cache entries stay.
        """
        with self._lock:
            attempts = self._attempts[run_id]
            new_attempt = max(attempts) + 1
            attempts[new_attempt] = str(uuid.uuid4())
            for artifact in [a for a in self._artifacts if a.run_id == run_id and a.attempt < new_attempt]:
                self._remove_artifact(artifact)
            return new_attempt

    def fail_next(self, target: str, status: int, times: int = 1, *, retry_after: str | None = None) -> None:
        """Answer the next `times` requests to `target` with `status` (0: drop the connection), with a
        Retry-After header when `retry_after` is given."""
        with self._lock:
            self._faults.append(_Fault(target, status, times, retry_after))

    @property
    def artifacts(self) -> list[FakeArtifact]:
        with self._lock:
            return list(self._artifacts)

    @property
    def cache_entries(self) -> list[FakeCacheEntry]:
        with self._lock:
            return list(self._cache)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    # -- dispatch --------------------------------------------------------------------------------------

    def handle(self, method: str, host: str, target: str, headers: dict[str, str], body: bytes) -> _Reply | None:
        """Answer one request; None means: drop the connection without an answer."""
        split = urlsplit(target)
        with self._lock:
            reply = self._injected_fault(split.path) or self._route(
                method, host, split.path, split.query, headers, body
            )
            logged = body if self._log_blob_bodies or not split.path.startswith((ARTIFACT_BLOBS, CACHE_BLOBS)) else b""
            self._requests.append(RecordedRequest(method, host, split.path, split.query, headers, logged, reply.status))
        return reply if reply.status else None

    def served(self, exchange: Exchange) -> None:
        """Called on the request's own thread, outside the fake's lock, once it is answered; a subclass that
        meters the traffic overrides it. Nothing here."""

    def _injected_fault(self, path: str) -> _Reply | None:
        for fault in self._faults:
            if fault.remaining > 0 and (fault.target == _twirp_method(path) or path.startswith(fault.target)):
                fault.remaining -= 1
                reply = _fault_reply(path, fault.status)
                if fault.retry_after is not None:
                    reply.headers["Retry-After"] = fault.retry_after
                return reply
        return None

    def _route(self, method: str, host: str, path: str, query: str, headers: dict[str, str], body: bytes) -> _Reply:
        if host == f"localhost:{self.port}":
            return self._blob(method, path, query, headers, body)
        if host != f"127.0.0.1:{self.port}":
            return _Reply(400, b"unknown host")
        if path.startswith("/twirp/"):
            return self._twirp(method, path, headers, body)
        prefix = GHES_PREFIX if path.startswith(f"{GHES_PREFIX}/") else ""
        return self._rest(method, path[len(prefix) :], query, headers, f"http://{host}{prefix}", body)

    # -- blob storage ----------------------------------------------------------------------------------

    def _sign(self, blob: str, permissions: str, lifetime: timedelta) -> str:
        expiry = (datetime.now(UTC) + lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = {"sv": "2023-11-03", "se": expiry, "sr": "b", "sp": permissions}
        query["sig"] = self._signature(blob, permissions, expiry)
        return f"http://localhost:{self.port}{blob}?{urlencode(query)}"

    def _signature(self, blob: str, permissions: str, expiry: str) -> str:
        digest = hmac.new(self._signing_key, f"{blob}\n{permissions}\n{expiry}".encode(), hashlib.sha256)
        return base64.b64encode(digest.digest()).decode()

    def _blob(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> _Reply:
        tokens = [self.rest_token, *self._scopes]
        if "authorization" in headers or any(t in v for v in headers.values() for t in tokens):
            return _azure_error(403, "AuthenticationFailed", "credentials must never be sent to the blob host")
        params = {k: v[0] for k, v in parse_qs(query).items()}
        permissions, expiry = params.get("sp", ""), params.get("se", "")
        expected = self._signature(path, permissions, expiry)
        if not hmac.compare_digest(params.get("sig", ""), expected) or expiry < datetime.now(UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ):
            return _azure_error(403, "AuthenticationFailed", "signature missing, wrong or expired")
        record = self._blobs.get(path)
        if record is None:
            return _azure_error(404, "BlobNotFound", "the specified blob does not exist")
        refused = azure_blob.check_version(headers)
        if refused is not None:
            return _Reply(*refused)
        if method == "PUT":
            if "w" not in permissions:
                return _azure_error(403, "AuthorizationPermissionMismatch", "the signature does not allow writes")
            if record.finalized:
                return _azure_error(409, "BlobImmutable", "the blob is sealed")
            status, answer, answer_headers = azure_blob.write(record.blob_state, params, headers, body)
            record.data = record.blob_state.data
            return _Reply(status, answer, answer_headers)
        if method == "GET":
            if "r" not in permissions:
                return _azure_error(403, "AuthorizationPermissionMismatch", "the signature does not allow reads")
            if not record.finalized:
                return _azure_error(404, "BlobNotFound", "the specified blob does not exist")
            return _Reply(*azure_blob.read(record.blob_state, headers))
        return _azure_error(405, "UnsupportedHttpVerb", f"{method} is not supported here")

    # -- twirp -----------------------------------------------------------------------------------------

    def _twirp(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        service, _, name = path.removeprefix("/twirp/").partition("/")
        handler = self._twirp_methods.get((service, name))
        if method != "POST" or handler is None:
            return _twirp_error(404, "bad_route", f"no handler for {method} {path}")
        if not headers.get("content-type", "").startswith("application/json"):
            return _twirp_error(404, "bad_route", "unexpected Content-Type")
        scheme, _, token = headers.get("authorization", "").partition(" ")
        scope = self._scopes.get(token) if scheme == "Bearer" else None
        if scope is None:
            return _twirp_error(401, "unauthenticated", "missing or unknown runtime token")
        try:
            message = json.loads(body)
        except ValueError:
            return _twirp_error(400, "malformed", "the body is not JSON")
        if not isinstance(message, dict):
            return _twirp_error(400, "malformed", "the body is not a JSON object")
        unknown = sorted(set(message) - _REQUEST_FIELDS[name])
        if unknown:
            return _twirp_error(400, "malformed", f"unknown fields {unknown}")
        try:
            return _json(200, handler(scope, message))
        except _TwirpFailure as failure:
            return _twirp_error(failure.status, failure.code, failure.msg)

    def _check_backend_ids(self, scope: _JobScope, message: dict[str, Any]) -> None:
        if (
            message.get("workflow_run_backend_id") != scope.workflow_run_backend_id
            or message.get("workflow_job_run_backend_id") != scope.workflow_job_run_backend_id
        ):
            raise _TwirpFailure(403, "permission_denied", "backend ids do not match the runtime token")

    def _attempt_artifact(self, scope: _JobScope, name: str, *, finalized: bool | None) -> FakeArtifact:
        for artifact in self._artifacts:
            same_attempt = (artifact.run_id, artifact.attempt) == (scope.run_id, scope.attempt)
            if same_attempt and artifact.name == name and finalized in (None, artifact.finalized):
                return artifact
        raise _TwirpFailure(404, "not_found", f"artifact {name!r} not found")

    def _create_artifact(self, scope: _JobScope, message: dict[str, Any]) -> dict[str, Any]:
        self._check_backend_ids(scope, message)
        name = _required_string(message, "name")
        version = message.get("version")
        if not isinstance(version, int) or version < 4:
            raise _TwirpFailure(400, "invalid_argument", "version must be an int32 of at least 4")
        if any((a.run_id, a.attempt, a.name) == (scope.run_id, scope.attempt, name) for a in self._artifacts):
            raise _TwirpFailure(409, "already_exists", f"an artifact with this name already exists: {name}")
        blob = f"{ARTIFACT_BLOBS}{scope.workflow_run_backend_id}/{uuid.uuid4()}.zip"
        artifact = FakeArtifact(
            id=next(self._artifact_ids),
            name=name,
            run_id=scope.run_id,
            attempt=scope.attempt,
            job=scope.job,
            workflow_run_backend_id=scope.workflow_run_backend_id,
            workflow_job_run_backend_id=scope.workflow_job_run_backend_id,
            blob=blob,
            created_at=datetime.now(UTC),
            mime_type=message.get("mime_type"),
            version=version,
        )
        self._artifacts.append(artifact)
        self._blobs[blob] = artifact
        return {"ok": True, "signed_upload_url": self._sign(blob, "cw", timedelta(hours=1))}

    def _finalize_artifact(self, scope: _JobScope, message: dict[str, Any]) -> dict[str, Any]:
        self._check_backend_ids(scope, message)
        artifact = self._attempt_artifact(scope, _required_string(message, "name"), finalized=None)
        if artifact.finalized:
            raise _TwirpFailure(409, "already_exists", "the artifact is already finalized")
        if artifact.data is None:
            raise _TwirpFailure(412, "failed_precondition", "nothing was uploaded to the signed URL")
        size = _int64(message, "size")
        if size != len(artifact.data):
            raise _TwirpFailure(400, "invalid_argument", f"size {size} differs from the {len(artifact.data)} uploaded")
        digest = f"sha256:{hashlib.sha256(artifact.data).hexdigest()}"
        if "hash" in message and message["hash"] != digest:
            raise _TwirpFailure(400, "invalid_argument", "hash differs from the uploaded bytes")
        artifact.finalized, artifact.size, artifact.digest = True, size, digest
        return {"ok": True, "artifact_id": str(artifact.id)}

    def _list_artifacts(self, scope: _JobScope, message: dict[str, Any]) -> dict[str, Any]:
        self._check_backend_ids(scope, message)
        name_filter = message.get("name_filter")
        id_filter = _int64(message, "id_filter") if "id_filter" in message else None
        listed = [
            a
            for a in self._artifacts
            if (a.run_id, a.attempt) == (scope.run_id, scope.attempt)
            and a.finalized
            and name_filter in (None, a.name)
            and id_filter in (None, a.id)
        ]
        return {
            "artifacts": [
                {
                    "workflow_run_backend_id": a.workflow_run_backend_id,
                    "workflow_job_run_backend_id": a.workflow_job_run_backend_id,
                    "database_id": str(a.id),
                    "name": a.name,
                    "size": str(a.size),
                    "created_at": _proto_timestamp(a.created_at),
                    "digest": a.digest,
                }
                for a in listed
            ]
        }

    def _signed_artifact_url(self, scope: _JobScope, message: dict[str, Any]) -> dict[str, Any]:
        self._check_backend_ids(scope, message)
        artifact = self._attempt_artifact(scope, _required_string(message, "name"), finalized=True)
        return {"signed_url": self._sign(artifact.blob, "r", timedelta(minutes=10))}

    def _delete_artifact(self, scope: _JobScope, message: dict[str, Any]) -> dict[str, Any]:
        self._check_backend_ids(scope, message)
        artifact = self._attempt_artifact(scope, _required_string(message, "name"), finalized=None)
        self._remove_artifact(artifact)
        return {"ok": True, "artifact_id": str(artifact.id)}

    def _remove_artifact(self, artifact: FakeArtifact) -> None:
        self._artifacts.remove(artifact)
        del self._blobs[artifact.blob]

    def _create_cache_entry(self, scope: _JobScope, message: dict[str, Any]) -> dict[str, Any]:
        key, version = _required_string(message, "key"), _required_string(message, "version")
        if any((e.key, e.version) == (key, version) for e in self._cache):
            raise _TwirpFailure(
                409, "already_exists", "cache entry with the same key, version, and scope already exists"
            )
        blob = f"{CACHE_BLOBS}{uuid.uuid4()}"
        entry = FakeCacheEntry(next(self._cache_ids), key, version, blob, datetime.now(UTC))
        self._cache.append(entry)
        self._blobs[blob] = entry
        return {"ok": True, "signed_upload_url": self._sign(blob, "cw", timedelta(hours=1)), "message": ""}

    def _finalize_cache_entry(self, scope: _JobScope, message: dict[str, Any]) -> dict[str, Any]:
        key, version = _required_string(message, "key"), _required_string(message, "version")
        entry = next((e for e in self._cache if (e.key, e.version, e.finalized) == (key, version, False)), None)
        if entry is None:
            raise _TwirpFailure(404, "not_found", "no cache entry is being uploaded under this key and version")
        if entry.data is None:
            raise _TwirpFailure(412, "failed_precondition", "nothing was uploaded to the signed URL")
        size = _int64(message, "size_bytes")
        if size != len(entry.data):
            raise _TwirpFailure(
                400, "invalid_argument", f"size_bytes {size} differs from the {len(entry.data)} uploaded"
            )
        entry.finalized, entry.size = True, size
        return {"ok": True, "entry_id": str(entry.id), "message": ""}

    def _cache_download_url(self, scope: _JobScope, message: dict[str, Any]) -> dict[str, Any]:
        key, version = _required_string(message, "key"), _required_string(message, "version")
        restore_keys = message.get("restore_keys", [])
        if not isinstance(restore_keys, list) or not all(isinstance(k, str) for k in restore_keys):
            raise _TwirpFailure(400, "malformed", "restore_keys must be a list of strings")
        candidates = [e for e in self._cache if e.finalized and e.version == version]

        def newest(prefix: str, *, exact: bool = False) -> FakeCacheEntry | None:
            matches = [e for e in candidates if (e.key == prefix if exact else e.key.startswith(prefix))]
            return max(matches, key=lambda e: (e.created_at, e.id), default=None)

        # As actions/cache documents it: the exact key, then keys starting with it, then each restore key.
        found = newest(key, exact=True) or newest(key)
        for prefix in restore_keys:
            found = found or newest(prefix)
        if found is None:
            return {"ok": False, "signed_download_url": "", "matched_key": ""}
        url = self._sign(found.blob, "r", timedelta(minutes=10))
        return {"ok": True, "signed_download_url": url, "matched_key": found.key}

    # -- REST ------------------------------------------------------------------------------------------

    def _rest(self, method: str, path: str, query: str, headers: dict[str, str], base: str, body: bytes) -> _Reply:
        authorization = headers.get("authorization", "")
        if not authorization:
            return _rest_error(401, "Requires authentication")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("token", "bearer") or token != self.rest_token:
            return _rest_error(401, "Bad credentials")
        parts = path.strip("/").split("/")
        if parts[:1] == ["repos"] and "/".join(parts[1:3]) == self.repository and parts[3:4] == ["pulls"]:
            return self._pulls(method, parts[4:], query, body, base)
        if method != "GET" or parts[:1] != ["repos"] or "/".join(parts[1:3]) != self.repository:
            return _rest_error(404, "Not Found")
        match parts[3:]:
            case []:
                return _json(200, self._repository_json(base))
            case ["actions", "runs", run_id] if run_id.isdigit() and int(run_id) in self._attempts:
                return _json(200, self._run_json(int(run_id), base))
            case ["actions", "runs", run_id, "artifacts"] if run_id.isdigit() and int(run_id) in self._attempts:
                return self._run_artifacts_page(int(run_id), query, base)
            case ["actions", "artifacts", artifact_id, "zip"] if artifact_id.isdigit():
                return self._artifact_zip(int(artifact_id))
        return _rest_error(404, "Not Found")

    def _pulls(self, method: str, parts: list[str], query: str, body: bytes, base: str) -> _Reply:
        try:
            message = json.loads(body) if body else None
        except ValueError:
            return _rest_error(400, "Problems parsing JSON")
        status, answer, headers = self.pulls.handle(method, parts, query, message, base)
        return _json(status, answer, headers)

    def _repository_json(self, base: str) -> dict[str, Any]:
        owner, _, name = self.repository.partition("/")
        return {
            "id": _REPOSITORY_ID,
            "node_id": "R_kgDOfake",
            "name": name,
            "full_name": self.repository,
            "private": True,
            "owner": {"login": owner, "id": 1, "type": "Organization", "url": f"{base}/users/{owner}"},
            "html_url": f"http://127.0.0.1:{self.port}/{self.repository}",
            "url": f"{base}/repos/{self.repository}",
            "default_branch": "main",
            **({"permissions": self.user_permissions} if self.user_permissions is not None else {}),
        }

    def _run_json(self, run_id: int, base: str) -> dict[str, Any]:
        url = f"{base}/repos/{self.repository}/actions/runs/{run_id}"
        return {
            "id": run_id,
            "node_id": f"WFR_fake{run_id}",
            "name": "planeteer",
            "head_branch": "main",
            "head_sha": _HEAD_SHA,
            "path": ".github/workflows/planeteer.yml",
            "run_number": 1,
            "run_attempt": max(self._attempts[run_id]),
            "event": "workflow_dispatch",
            "status": "in_progress",
            "conclusion": None,
            "workflow_id": 1,
            "url": url,
            "html_url": f"http://127.0.0.1:{self.port}/{self.repository}/actions/runs/{run_id}",
            "artifacts_url": f"{url}/artifacts",
            "jobs_url": f"{url}/jobs",
            "logs_url": f"{url}/logs",
            "cancel_url": f"{url}/cancel",
            "rerun_url": f"{url}/rerun",
            "workflow_url": f"{base}/repos/{self.repository}/actions/workflows/1",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "repository": self._repository_json(base),
        }

    def _run_artifacts_page(self, run_id: int, query: str, base: str) -> _Reply:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        per_page = min(int(params.get("per_page", "30")), 100)
        page = max(int(params.get("page", "1")), 1)
        name = params.get("name")
        listed = sorted(
            (a for a in self._artifacts if a.run_id == run_id and a.finalized and name in (None, a.name)),
            key=lambda a: a.id,
            reverse=True,
        )
        last_page = max((len(listed) + per_page - 1) // per_page, 1)
        chunk = listed[(page - 1) * per_page : page * per_page]
        body = {"total_count": len(listed), "artifacts": [self._artifact_json(a, base) for a in chunk]}
        url = f"{base}/repos/{self.repository}/actions/runs/{run_id}/artifacts"

        def link(to_page: int, rel: str) -> str:
            kept = {k: v for k, v in params.items() if k != "page"}
            return f'<{url}?{urlencode({**kept, "page": to_page})}>; rel="{rel}"'

        links = []
        if page < last_page:
            links += [link(page + 1, "next"), link(last_page, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return _json(200, body, {"Link": ", ".join(links)} if links else None)

    def _artifact_json(self, artifact: FakeArtifact, base: str) -> dict[str, Any]:
        url = f"{base}/repos/{self.repository}/actions/artifacts/{artifact.id}"
        return {
            "id": artifact.id,
            "node_id": f"MDg6QXJ0aWZhY3Q{artifact.id}",
            "name": artifact.name,
            "size_in_bytes": artifact.size,
            "url": url,
            "archive_download_url": f"{url}/zip",
            "expired": artifact.expired,
            "created_at": _rest_timestamp(artifact.created_at),
            "updated_at": _rest_timestamp(artifact.created_at),
            "expires_at": _rest_timestamp(artifact.created_at + timedelta(days=90)),
            "digest": artifact.digest,
            "workflow_run": {
                "id": artifact.run_id,
                "repository_id": _REPOSITORY_ID,
                "head_repository_id": _REPOSITORY_ID,
                "head_branch": "main",
                "head_sha": _HEAD_SHA,
            },
        }

    def _artifact_zip(self, artifact_id: int) -> _Reply:
        artifact = next((a for a in self._artifacts if a.id == artifact_id and a.finalized), None)
        if artifact is None:
            return _rest_error(404, "Not Found")
        if artifact.expired:
            return _rest_error(410, "Artifact has expired")
        return _Reply(302, headers={"Location": self._sign(artifact.blob, "r", timedelta(minutes=1))})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGitHubServices


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # buffer the status line, headers and body into one send (no Nagle/delayed-ACK stalls)

    def do_GET(self) -> None:
        arrived = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.fake.handle(self.command, headers.get("host", ""), self.path, headers, body)
        if reply is None:
            self.close_connection = True
        else:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
        status, size = (reply.status, len(reply.body)) if reply is not None else (0, 0)
        path = urlsplit(self.path).path
        self.server.fake.served(Exchange(self.command, path, body, status, size, arrived, time.monotonic()))

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests inspect `FakeGitHubServices.requests` instead."""


def _twirp_method(path: str) -> str | None:
    return path.rsplit("/", 1)[-1] if path.startswith("/twirp/") else None


def _fault_reply(path: str, status: int) -> _Reply:
    twirp_method = _twirp_method(path)
    if status == 0:
        return _Reply(0)
    if twirp_method and status in _TWIRP_CODES:
        return _twirp_error(status, _TWIRP_CODES[status], "injected fault")
    if twirp_method or path.startswith((ARTIFACT_BLOBS, CACHE_BLOBS)):
        return _Reply(status, b"<html><body>injected fault</body></html>")
    return _rest_error(status, "injected fault")


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})


def _twirp_error(status: int, code: str, msg: str) -> _Reply:
    return _json(status, {"code": code, "msg": msg})


def _rest_error(status: int, message: str) -> _Reply:
    return _json(status, {"message": message, "documentation_url": "https://docs.github.com/rest"})


def _azure_error(status: int, code: str, message: str) -> _Reply:
    xml = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return _Reply(status, xml.encode(), {"Content-Type": "application/xml", "x-ms-error-code": code})


def _required_string(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value:
        raise _TwirpFailure(400, "invalid_argument", f"{name} is required")
    return value


def _int64(message: dict[str, Any], name: str) -> int:
    """protojson reads int64 from a decimal string (what clients send) or a number."""
    value = message.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
        raise _TwirpFailure(400, "malformed", f"{name} must be an int64")
    return int(value)


def _proto_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _rest_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _mint_runtime_token(run_backend_id: str, job_backend_id: str) -> str:
    """A JWT shaped like the runner's ACTIONS_RUNTIME_TOKEN; the signature is random bytes (never checked)."""
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5t": _b64url(secrets.token_bytes(20))}
    payload = {
        "nameid": "dddddddd-dddd-dddd-dddd-dddddddddddd",
        "scp": f"Actions.ExampleScope Actions.Results:{run_backend_id}:{job_backend_id}",
        "IdentityTypeClaim": "System:ServiceIdentity",
        "ac": json.dumps([{"Scope": "refs/heads/main", "Permission": 3}]),
        "iss": "vstoken.actions.githubusercontent.com",
        "aud": "vstoken.actions.githubusercontent.com",
        "nbf": now - 60,
        "exp": now + 6 * 3600,
        "jti": secrets.token_hex(8),
    }
    encoded = [_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)]
    return ".".join([*encoded, _b64url(secrets.token_bytes(256))])
