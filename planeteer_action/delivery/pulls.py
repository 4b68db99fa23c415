"""The pull request for the integration branch, over GitHub's REST API: find the open one, create, update.

Fields used, as GitHub's REST reference (docs.github.com/rest/pulls/pulls, and its OpenAPI description in
github/rest-api-description) defines them:
- `GET /repos/{owner}/{repo}/pulls?head=OWNER:BRANCH&state=open`: `head` filters by "user or organization and
  branch name in the format of user:ref-name"; answers a list of pull requests.
- `POST /repos/{owner}/{repo}/pulls` with `title`, `head` (the branch with the changes), `base` (the branch to
  merge into), `body`: answers 201 and the pull request; 422 when it cannot be made (e.g. no commits between).
- `PATCH /repos/{owner}/{repo}/pulls/{pull_number}` with `title`, `body`: answers 200 and the pull request.
- A pull request's `number` and `html_url`; `GET /repos/{owner}/{repo}` gives `permissions` (`push`) for a user's
  token only, not for an installation token such as a workflow's GITHUB_TOKEN.
- A token without the permission an endpoint needs is answered 403, with `X-Accepted-GitHub-Permissions`
  naming it (e.g. `pull_requests=write`) for GitHub Apps' (and so GITHUB_TOKEN's) and fine-grained tokens
  (sources in `PullRequests.check_access`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from planeteer_action.delivery.errors import DeliveryFailed, DeliveryRefused
from planeteer_action.github._twirp import HttpTransport, RetryPolicy, ServiceError

ACTIONS_MAY_NOT_OPEN = "not permitted to create or approve pull requests"
# How GitHub says the repository's Actions settings forbid workflows to open pull requests.


@dataclass(frozen=True)
class PullRequest:
    number: int
    html_url: str


class PullRequests:
    """The pull requests of one repository, on github.com or a GHES host (`api_url` is GITHUB_API_URL)."""

    def __init__(self, token: str, repository: str, api_url: str, *, retry: RetryPolicy | None = None) -> None:
        self._repository = repository
        self._base = f"{api_url.rstrip('/')}/repos/{repository}"
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        self._transport = HttpTransport(requests.Session(), retry or RetryPolicy(), ServiceError, (token,))

    def check_access(self) -> None:
        """What can be known before the run: the token is accepted and can read the repository; a user's token
        with no push access is refused; and a pull request with no fields is asked for, which can never be
        made: a 401, 403 or 404 refuses the run, with the permission GitHub names; any other answer (422) lets it
        start, and the real call at the end reports a refusal in the same words.

        The evidence, and where it stops:
        - "If your app makes a REST API request with insufficient permissions, the API will return a `403`
          response", and the `X-Accepted-GitHub-Permissions` response header lists the permissions the endpoint
          needs (https://docs.github.com/en/apps/creating-github-apps/registering-a-github-app/choosing-permissions-for-a-github-app,
          https://github.blog/changelog/2023-08-10-x-accepted-github-permissions-header-for-fine-grained-permission-actors);
          a workflow's GITHUB_TOKEN is such an app's installation token
          (https://docs.github.com/en/actions/concepts/security/github_token).
          GitHub may answer 404 instead of 403 so as not to confirm that a private repository exists
          (https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api).
        - Public threads show `POST /repos/{owner}/{repo}/pulls` with a full body answered 403 "Resource not
          accessible by integration" for a GITHUB_TOKEN without `pull-requests: write`
          (https://github.com/repo-sync/pull-request/issues/129, https://github.com/peter-evans/create-pull-request/issues/3236)
          and 403 "GitHub Actions is not permitted to create or approve pull requests." when the repository's
          Actions settings forbid it (https://github.com/danielroe/uppt/issues/11,
          https://github.blog/changelog/2022-05-03-github-actions-prevent-github-actions-from-creating-and-approving-pull-requests/).
        - Not found anywhere, documented or observed: whether GitHub checks the permission (or that setting)
          before it validates the fields. If it validates first, a token without the permission gets 422 here
          too and the run starts; GitHub documents no way to read a GITHUB_TOKEN's permissions, so the final
          call is where such a token is refused (the pushed branch keeps the work).
        """
        answer = self._call("GET", "", doing=f"reading {self._repository}")
        permissions = answer.get("permissions") if isinstance(answer, dict) else None
        if isinstance(permissions, dict) and permissions.get("push") is False:
            raise DeliveryRefused(
                f"the token cannot push to {self._repository}: use a token with write access to its contents, "
                "or set `deliver: none`"
            )
        response = self._send("POST", "/pulls", json={})
        if response.status_code in (401, 403, 404):
            raise DeliveryRefused(self._refusal(response, "opening pull requests in"))

    def find_open(self, owner: str, branch: str) -> PullRequest | None:
        """The open pull request from `owner:branch`, if there is one (the one an earlier run opened)."""
        found = self._call("GET", "/pulls", params={"head": f"{owner}:{branch}", "state": "open", "per_page": "100"})
        listed = found if isinstance(found, list) else []
        return _pull(listed[0]) if listed else None

    def create(self, title: str, head: str, base: str, body: str) -> PullRequest:
        fields = {"title": title, "head": head, "base": base, "body": body}
        return _pull(self._call("POST", "/pulls", json=fields, doing=f"opening a pull request from {head}"))

    def update(self, number: int, title: str, body: str) -> PullRequest:
        fields = {"title": title, "body": body}
        return _pull(self._call("PATCH", f"/pulls/{number}", json=fields, doing=f"updating pull request #{number}"))

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self._transport.send(
                f"{method} {path or '/'}", method, self._base + path, headers=self._headers, **kwargs
            )
        except ServiceError as exc:
            raise DeliveryFailed(f"GitHub did not answer about {self._repository}: {exc}") from None

    def _call(self, method: str, path: str, *, doing: str | None = None, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        doing = doing or f"listing the pull requests of {self._repository}"
        if response.status_code in (401, 403, 404):
            raise DeliveryFailed(self._refusal(response, doing))
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"{doing} failed: HTTP {response.status_code} {_message(response)}")
        return response.json()

    def _refusal(self, response: requests.Response, doing: str) -> str:
        message = _message(response)
        if response.status_code == 401:
            return f"GitHub rejected the token ({doing} {self._repository}): pass a valid `github-token`"
        if ACTIONS_MAY_NOT_OPEN in message:
            return (
                "this repository does not let workflows open pull requests: allow it in Settings > Actions > "
                "General > Workflow permissions ('Allow GitHub Actions to create and approve pull requests'), "
                "or set `deliver: branch`"
            )
        needed = response.headers.get("X-Accepted-GitHub-Permissions", "")
        named = needed.replace("pull_requests", "pull-requests").replace("=", ": ") or "pull-requests: write"
        return (
            f"the token may not do this ({doing} {self._repository}: HTTP {response.status_code} {message}): "
            f"add `permissions: {named}` to the workflow, or set `deliver: branch`"
        )


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    details = [str(e.get("message") or e.get("code")) for e in body.get("errors", []) if isinstance(e, dict)]
    return " ".join([str(body.get("message", "")), *details]).strip()[:300]


def _pull(data: Any) -> PullRequest:
    if not isinstance(data, dict) or not isinstance(data.get("number"), int):
        raise DeliveryFailed("GitHub answered a pull request call with no pull request: try again")
    return PullRequest(number=data["number"], html_url=str(data.get("html_url", "")))
