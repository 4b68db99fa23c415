"""HTTP plumbing shared by the clients of GitHub's Actions services (artifacts, cache, REST run artifacts).

One place for the rules every call must follow: retry transient failures (HTTP 429, 500, 502-504 and
dropped connections) with exponential backoff, speak twirp's JSON dialect (snake_case fields, int64 as
strings, errors as `{"code", "msg"}`), move bytes to and from signed blob URLs, and keep secrets out of
every message. Tokens are never echoed and signed URLs lose their query string, because the signature
lives there; even urllib3's debug log of request lines is scrubbed.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import requests

from planeteer_action import __version__
from planeteer_action.redaction import mask

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
TIMEOUT = (10.0, 120.0)  # connect, read (seconds)
# Named like the official clients' `@actions/artifact-<version>` (lib/internal/shared/user-agent.js), so
# GitHub can tell planeteer's calls apart.
USER_AGENT = f"planeteer/{__version__}"
# The longest wait a Retry-After answer is honoured with; a longer one is waited for this long.
MAX_RETRY_AFTER_SECONDS = 60.0
_TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
_URL_WITH_QUERY = re.compile(r"([a-z][a-z0-9+.-]*://[^\s?#'\"]*)\?[^\s'\"]*", re.IGNORECASE)
_FRACTION_PAST_MICROSECONDS = re.compile(r"(\.\d{6})\d+")


class ServiceError(Exception):
    """A failed call to a GitHub service, described in one line that holds no secret.

    `status` is the HTTP status when there was one; `code` is the twirp error code (e.g. "already_exists").
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` made fit for a one-line message: known secrets masked, URL queries cut, no line breaks."""
    text = _URL_WITH_QUERY.sub(r"\1?<redacted>", mask(text, secrets))
    return " ".join(text.split())[:400]


class _ScrubQueryStrings(logging.Filter):
    """Cuts query strings from urllib3's log records, whose request lines would carry blob signatures."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_cut_query(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def _cut_query(text: str) -> str:
    head, question_mark, _ = text.partition("?")
    return f"{head}?<redacted>" if question_mark else text


def _scrub_urllib3_logs() -> None:
    for name in ("urllib3.connectionpool", "urllib3.util.retry"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ScrubQueryStrings) for f in logger.filters):
            logger.addFilter(_ScrubQueryStrings())


_scrub_urllib3_logs()


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a transient failure gets and how long to wait between them.

    The wait before retry n (0-based) is drawn from [base_delay * multiplier**n, base_delay *
    multiplier**(n+1)): exponential, jittered so parallel jobs do not retry in step. `sleep` is
    injectable so tests need not wait.
    """

    attempts: int = 5
    base_delay: float = 1.0
    multiplier: float = 2.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, retry: int) -> float:
        return self.base_delay * self.multiplier**retry * random.uniform(1.0, self.multiplier)


class HttpTransport:
    """Sends HTTP requests under a retry policy and builds this client's errors, scrubbed of its secrets.

    Redirects are never followed here: a caller that expects one follows it itself, so it decides which
    headers go to the next host.
    """

    def __init__(
        self,
        session: requests.Session,
        retry: RetryPolicy,
        error_type: type[ServiceError],
        secrets: Iterable[str],
    ) -> None:
        self.session = session
        self.retry = retry
        self.error_type = error_type
        self._secrets = tuple(secrets)

    def error(self, message: str, *, status: int | None = None, code: str | None = None) -> ServiceError:
        return self.error_type(scrub(message, self._secrets), status=status, code=code)

    def send(self, label: str, method: str, url: str, **kwargs: Any) -> requests.Response:
        """The first response that is not a transient failure; raises once the attempts are spent.

        A transient failure that says when to come back (Retry-After) is retried no sooner than that."""
        attempt = 1
        kwargs["headers"] = {"User-Agent": USER_AGENT, **kwargs.get("headers", {})}
        while True:
            status: int | None = None
            retry_after = 0.0
            try:
                response = self.session.request(method, url, timeout=TIMEOUT, allow_redirects=False, **kwargs)
            except _TRANSIENT_ERRORS as exc:
                problem = f"connection to {urlsplit(url).netloc} failed ({type(exc).__name__})"
            else:
                if response.status_code not in RETRYABLE_STATUSES:
                    return response
                status = response.status_code
                problem = f"HTTP {status}"
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                response.close()
            if attempt >= self.retry.attempts:
                raise self.error(f"{label} failed after {attempt} attempts: {problem}", status=status)
            wait = max(self.retry.delay(attempt - 1), retry_after)
            log.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.1f s",
                label,
                attempt,
                self.retry.attempts,
                scrub(problem, self._secrets),
                wait,
            )
            self.retry.sleep(wait)
            attempt += 1


def retry_after_seconds(value: str | None) -> float:
    """A Retry-After header (delay in seconds, or an HTTP date) as seconds to wait, at most
    MAX_RETRY_AFTER_SECONDS; 0 when absent or unreadable."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class TwirpClient:
    """Calls the methods of one twirp service of the Actions results service, with the runtime token.

    The service lives at the origin of ACTIONS_RESULTS_URL: `{origin}/twirp/{service}/{Method}`.
    """

    def __init__(self, results_url: str, runtime_token: str, service: str, transport: HttpTransport) -> None:
        origin = urlsplit(results_url)
        self._base = f"{origin.scheme}://{origin.netloc}/twirp/{service}/"
        self._headers = {"Authorization": f"Bearer {runtime_token}", "Accept": "application/json"}
        self.transport = transport

    def call(self, method: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST `body` as JSON to `method`; the decoded answer, or the service's error raised."""
        response = self.transport.send(method, "POST", self._base + method, json=dict(body), headers=self._headers)
        if not 200 <= response.status_code < 300:
            code, msg = _twirp_error(response)
            detail = f" {code}: {msg}" if code else ""
            raise self.transport.error(
                f"{method} failed: HTTP {response.status_code}{detail}",
                status=response.status_code,
                code=code,
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise self.transport.error(
                f"{method}: the service answered HTTP {response.status_code} without a JSON object"
            )
        return answer


class ResultsServiceClient:
    """The setup every client of a results service shares: the job's runtime credentials, the retry policy
    and a twirp client whose errors are of the subclass's own type."""

    service: ClassVar[str]
    error_type: ClassVar[type[ServiceError]]

    def __init__(
        self,
        results_url: str,
        runtime_token: str,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        transport = HttpTransport(
            session or requests.Session(), retry or RetryPolicy(), self.error_type, (runtime_token,)
        )
        self._twirp = TwirpClient(results_url, runtime_token, self.service, transport)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
    ) -> Self | None:
        """The client for this job, or None outside a job that received the runtime token, or where the
        runner does not offer the service."""
        credentials = runtime_credentials(env)
        if credentials is None or not cls.offered(env):
            return None
        return cls(*credentials, session=session, retry=retry)

    @classmethod
    def offered(cls, env: Mapping[str, str]) -> bool:
        """Whether the runner offers this service to a job that holds the runtime token."""
        return True


def _twirp_error(response: requests.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return None, ""
    return body["code"], str(body.get("msg", ""))


@dataclass(frozen=True)
class BackendIds:
    """The run and job a runtime token speaks for, as the results service names them."""

    workflow_run_backend_id: str
    workflow_job_run_backend_id: str

    def fields(self) -> dict[str, str]:
        return {
            "workflow_run_backend_id": self.workflow_run_backend_id,
            "workflow_job_run_backend_id": self.workflow_job_run_backend_id,
        }


def runtime_credentials(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(results URL, runtime token) of the job, or None outside a step that received them."""
    token = env.get("ACTIONS_RUNTIME_TOKEN", "")
    results_url = env.get("ACTIONS_RESULTS_URL", "")
    return (results_url, token) if token and results_url else None


def backend_ids_from_token(token: str) -> BackendIds | None:
    """Read (not verify) the `Actions.Results:<run>:<job>` scope in the runtime token's JWT `scp` claim."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    scopes = payload.get("scp") if isinstance(payload, dict) else None
    if not isinstance(scopes, str):
        return None
    for scope in scopes.split():
        pieces = scope.split(":")
        if len(pieces) == 3 and pieces[0] == "Actions.Results" and pieces[1] and pieces[2]:
            return BackendIds(pieces[1], pieces[2])
    return None


def parse_timestamp(value: object) -> datetime | None:
    """A protobuf JSON Timestamp ("2024-05-01T12:00:00.123456789Z") as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(_FRACTION_PAST_MICROSECONDS.sub(r"\1", value))
    except ValueError:
        return None
