"""A workflow run's artifacts over the REST API: the re-run path.

The job-scoped artifact service only sees the current run attempt. A re-run must read the checkpoints
its earlier attempts uploaded, which the REST API lists for the whole run (every attempt whose
artifacts still exist). This needs a token with `actions: read`. Downloads answer with a redirect to a
signed blob URL, which is followed without the token: the blob host must never receive it.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin, urlsplit

import requests
from github import Auth, Github, GithubException
from github.Artifact import Artifact
from github.GithubRetry import GithubRetry
from github.PaginatedList import PaginatedList

from planeteer_action.github._twirp import RETRYABLE_STATUSES, HttpTransport, RetryPolicy, ServiceError
from planeteer_action.github.blob_storage import get_blob

DEFAULT_API_URL = "https://api.github.com"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class RunArtifactsError(ServiceError):
    """A REST artifact call failed; the message is one line that names the fix and never holds the token."""


@dataclass(frozen=True)
class RunArtifact:
    """One artifact of a workflow run, from any attempt."""

    id: int
    name: str
    size: int
    created_at: datetime | None
    expired: bool


class RunArtifacts:
    """Lists and downloads the artifacts of any run of one repository, on github.com or a GHES host.

    `api_url` is the REST root: GITHUB_API_URL in a workflow (`https://HOST/api/v3` on GHES).
    """

    def __init__(
        self,
        token: str,
        repository: str,
        api_url: str = DEFAULT_API_URL,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        owner, _, name = repository.partition("/")
        if not owner or not name or "/" in name:
            raise RunArtifactsError(f"repository must look like OWNER/NAME, got {repository!r}")
        policy = retry or RetryPolicy()
        self._token = token
        self._repository = repository
        self._api_url = api_url.rstrip("/")
        self._transport = HttpTransport(session or requests.Session(), policy, RunArtifactsError, (token,))
        github_retry = GithubRetry(
            total=policy.attempts - 1,
            backoff_factor=policy.base_delay,
            status_forcelist=sorted(RETRYABLE_STATUSES),
        )
        # No pause between the listing's pages: PyGithub waits 0.25 s before every request by default, where
        # GitHub's REST best practices ask only for serial requests and a pause between mutative ones (POST,
        # PATCH, PUT, DELETE), which this client never makes.
        self._github = Github(
            base_url=self._api_url,
            auth=Auth.Token(token),
            per_page=100,
            retry=github_retry,
            seconds_between_requests=None,
        )

    def list(self, run_id: int, name_prefix: str = "") -> builtins.list[RunArtifact]:
        """The artifacts of run `run_id` (all attempts) whose names start with `name_prefix`."""
        doing = f"listing the artifacts of run {run_id} in {self._repository}"
        # The run's artifact pages alone: looking the repository and the run up first (PyGithub's objects)
        # would be two more round trips before a restore can fetch anything.
        url = f"/repos/{self._repository}/actions/runs/{run_id}/artifacts"
        pages = PaginatedList(Artifact, self._github.requester, url, None, list_item="artifacts")
        try:
            return [
                RunArtifact(
                    id=artifact.id,
                    name=artifact.name,
                    size=artifact.size_in_bytes,
                    created_at=artifact.created_at,
                    expired=artifact.expired,
                )
                for artifact in pages
                if artifact.name.startswith(name_prefix)
            ]
        except GithubException as exc:
            raise self._http_error(doing, exc.status) from None
        except requests.RequestException as exc:
            host = urlsplit(self._api_url).netloc
            raise self._transport.error(f"{doing}: no usable answer from {host} ({type(exc).__name__})") from None

    def download(self, artifact_id: int, *, max_bytes: int | None = None) -> bytes:
        """The bytes of artifact `artifact_id`; refuses artifacts larger than `max_bytes` (callers pass the
        cap of what they will open, e.g. a checkpoint's `Limits.max_archive_bytes`)."""
        doing = f"downloading artifact {artifact_id} of {self._repository}"
        url = f"{self._api_url}/repos/{self._repository}/actions/artifacts/{artifact_id}/zip"
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        response = self._transport.send(doing, "GET", url, headers=headers)
        response.close()
        location = response.headers.get("Location")
        if response.status_code not in _REDIRECTS or not location:
            raise self._http_error(doing, response.status_code)
        # A fresh request without the token: the redirect target is a signed blob URL on another host.
        return get_blob(self._transport, doing, urljoin(url, location), max_bytes=max_bytes)

    def _http_error(self, doing: str, status: int) -> ServiceError:
        if status == 401:
            fix = "GitHub rejected the token: pass a valid token (the workflow's github.token will do)"
        elif status in (403, 404):
            fix = "the token cannot read this run's artifacts: give the workflow `permissions: actions: read`"
            if status == 404:
                fix += f" and check that the run or artifact exists in {self._repository}"
        elif status == 410:
            fix = "the artifact has expired"
        else:
            fix = "GitHub answered with an unexpected status"
        return self._transport.error(f"{doing}: {fix} (HTTP {status})", status=status)
