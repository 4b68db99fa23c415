"""Workflow artifacts of the current run attempt, through the Actions results service (artifacts v4).

Checkpoints saved as artifacts outlive the runner, so a re-run can resume. This is the job-scoped path:
it needs the runtime token only node and docker actions receive (ACTIONS_RUNTIME_TOKEN,
ACTIONS_RESULTS_URL) and sees the artifacts of this run attempt. Earlier attempts' artifacts are read
over REST by `run_artifacts`. Artifacts are immutable: a name can be used once per run attempt.

Artifacts are zip archives, declared as such (`mime_type` and the blob's Content-Type, as @actions/artifact
6.x declares them), so the workflow page, download-artifact and the official client unzip them.
"""

from __future__ import annotations

import builtins
import hashlib
from dataclasses import dataclass
from datetime import datetime

import requests

from planeteer_action.github._twirp import (
    ResultsServiceClient,
    RetryPolicy,
    ServiceError,
    backend_ids_from_token,
    parse_timestamp,
)
from planeteer_action.github.blob_storage import get_blob, put_blob

SERVICE = "github.actions.results.api.v1.ArtifactService"
# @actions/artifact 6.x, lib/internal/upload/upload-artifact.js: `version: 7` and
# `mimeType: StringValue.create({value: contentType})`, contentType being 'application/zip' for `<name>.zip`.
_ARTIFACT_VERSION = 7
CONTENT_TYPE = "application/zip"
_FORBIDDEN_NAME_CHARACTERS = frozenset('":<>|*?\r\n\\/')


class ArtifactServiceError(ServiceError):
    """An artifact call failed; the message is one line, without the token or any URL signature."""


@dataclass(frozen=True)
class ArtifactRef:
    """One finalized artifact of this run attempt, as ListArtifacts reports it."""

    id: int
    name: str
    size: int
    created_at: datetime | None
    digest: str | None


class ArtifactService(ResultsServiceClient):
    """Uploads, lists, downloads and deletes this run attempt's artifacts as the job holding the token."""

    service = SERVICE
    error_type = ArtifactServiceError

    def __init__(
        self,
        results_url: str,
        runtime_token: str,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        ids = backend_ids_from_token(runtime_token)
        if ids is None:
            raise ArtifactServiceError(
                "ACTIONS_RUNTIME_TOKEN is not a JWT with an Actions.Results scope: "
                "run inside a GitHub Actions job (node or docker action) to use artifacts"
            )
        self._ids = ids.fields()
        super().__init__(results_url, runtime_token, session=session, retry=retry)

    def upload(self, name: str, data: bytes) -> int:
        """Store the zip archive `data` as the artifact `name`; returns its id. Fails if the name is taken in
        this attempt."""
        _check_name(name)
        request = {**self._ids, "name": name, "version": _ARTIFACT_VERSION, "mime_type": CONTENT_TYPE}
        try:
            created = self._twirp.call("CreateArtifact", request)
        except ArtifactServiceError as exc:
            if exc.code == "already_exists":
                raise ArtifactServiceError(
                    f"an artifact named {name!r} already exists in this run attempt (artifacts are "
                    "immutable, and a failed upload also keeps its name): upload under a new name",
                    status=exc.status,
                    code=exc.code,
                ) from None
            raise
        upload_url = created.get("signed_upload_url")
        if not created.get("ok") or not isinstance(upload_url, str) or not upload_url:
            raise ArtifactServiceError(f"CreateArtifact refused artifact {name!r}")
        put_blob(self._twirp.transport, f"upload of artifact {name!r}", upload_url, data, CONTENT_TYPE)
        finalized = self._twirp.call(
            "FinalizeArtifact",
            {
                **self._ids,
                "name": name,
                "size": str(len(data)),
                "hash": f"sha256:{hashlib.sha256(data).hexdigest()}",
            },
        )
        if not finalized.get("ok"):
            raise ArtifactServiceError(f"FinalizeArtifact refused artifact {name!r}")
        return int(finalized.get("artifact_id", 0))

    def list(self, name_prefix: str | None = None) -> builtins.list[ArtifactRef]:
        """This run attempt's artifacts whose names start with `name_prefix` (all when None)."""
        answer = self._twirp.call("ListArtifacts", self._ids)
        refs = [
            ArtifactRef(
                id=int(item.get("database_id", 0)),
                name=str(item.get("name", "")),
                size=int(item.get("size", 0)),
                created_at=parse_timestamp(item.get("created_at")),
                digest=item.get("digest") or None,
            )
            for item in answer.get("artifacts", [])
        ]
        return [ref for ref in refs if ref.name.startswith(name_prefix or "")]

    def delete(self, name: str) -> None:
        """Delete the artifact `name` of this run attempt; deleting one that is not there is no error."""
        try:
            self._twirp.call("DeleteArtifact", {**self._ids, "name": name})
        except ArtifactServiceError as exc:
            if exc.code != "not_found":
                raise

    def download(self, name: str) -> bytes:
        """The bytes of this run attempt's artifact `name`."""
        try:
            answer = self._twirp.call("GetSignedArtifactURL", {**self._ids, "name": name})
        except ArtifactServiceError as exc:
            if exc.code == "not_found":
                raise ArtifactServiceError(
                    f"no artifact named {name!r} in this run attempt", status=exc.status, code=exc.code
                ) from None
            raise
        signed_url = answer.get("signed_url")
        if not isinstance(signed_url, str) or not signed_url:
            raise ArtifactServiceError(f"GetSignedArtifactURL gave no URL for artifact {name!r}")
        return get_blob(self._twirp.transport, f"download of artifact {name!r}", signed_url)


def _check_name(name: str) -> None:
    if not name:
        raise ArtifactServiceError("artifact names must not be empty")
    bad = sorted(_FORBIDDEN_NAME_CHARACTERS.intersection(name))
    if bad:
        listed = " ".join(repr(c) for c in bad)
        raise ArtifactServiceError(f"artifact name {name!r} holds characters the service rejects: {listed}")
