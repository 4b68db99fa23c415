"""Pull requests for the fake GitHub services: `POST/GET/PATCH /repos/{owner}/{repo}/pulls`, mounted by
`FakeGitHubServices` (its `pulls`).

As GitHub's REST reference describes them (docs.github.com/rest/pulls/pulls; the OpenAPI description in
github/rest-api-description, operations pulls/create, pulls/list, pulls/get, pulls/update):
- create takes `title`, `head`, `base`, `body` (also `head_repo`, `draft`, `maintainer_can_modify`, `issue`) and
  answers 201 with the pull request; 422 "Validation Failed" with `errors` when a field is missing or names no
  branch, when an open pull request already exists for the same head and base ("A pull request already exists
  for owner:branch."), when there are no commits between base and head, or when the body is over 65,536
  characters;
- list takes `state` (open by default, closed, all), `head` (`user:ref-name`), `base`, `per_page`, `page`;
- update takes `title`, `body`, `state`, `base`, `maintainer_can_modify`;
- a pull request has `number`, `html_url`, `url`, `state`, `title`, `body`, `head`/`base` (`label`, `ref`, `sha`).
- A token short of a permission is answered 403 "Resource not accessible by integration" with the header
  `X-Accepted-GitHub-Permissions` naming it (docs.github.com/en/apps/creating-github-apps/registering-a-github-app/
  choosing-permissions-for-a-github-app; github.blog/changelog/2023-08-10-x-accepted-github-permissions-header-for-
  fine-grained-permission-actors; the message as seen for `POST .../pulls` in github.com/repo-sync/pull-request/
  issues/129); a repository whose Actions settings forbid workflows to open pull requests answers 403 "GitHub
  Actions is not permitted to create or approve pull requests." (the body quoted in github.com/danielroe/uppt/
  issues/11).
- Here both of those are checked before the fields: this fake's one assumption about GitHub's order, which
  no source found says either way (see `PullRequests.check_access`, whose empty-body probe relies on it).

Stricter than GitHub in one way: unknown fields are refused (GitHub ignores them), so a misspelt one fails.
Branches are read from `remote`, the bare repository the checkout pushes to.
"""

from __future__ import annotations

import itertools
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

Answer = tuple[int, Any, dict[str, str]]
DOCS = "https://docs.github.com/rest/pulls/pulls"
_CREATE_FIELDS = {"title", "head", "head_repo", "base", "body", "maintainer_can_modify", "draft", "issue"}
_UPDATE_FIELDS = {"title", "body", "state", "base", "maintainer_can_modify"}
MAX_BODY = 65_536


class FakePulls:
    def __init__(self, repository: str, server: str) -> None:
        self.repository = repository
        self.owner = repository.partition("/")[0]
        self.server = server
        self.remote: Path | None = None
        self.permission = "write"
        """The token's `pull_requests` permission: write, read or none."""
        self.actions_may_open = True
        self.pulls: list[dict[str, Any]] = []
        self._numbers = itertools.count(17)

    def handle(self, method: str, parts: list[str], query: str, body: Any, base_url: str) -> Answer:
        """`parts`: the path after /repos/{owner}/{repo}/pulls, split."""
        if parts == [] and method == "GET":
            return self._allowed("read") or self._list(query)
        if parts == [] and method == "POST":
            return self._allowed("write") or self._create(body, base_url)
        if len(parts) == 1 and parts[0].isdigit():
            pull = next((p for p in self.pulls if p["number"] == int(parts[0])), None)
            if pull is None:
                return _error(404, "Not Found")
            if method == "GET":
                return self._allowed("read") or (200, pull, {})
            if method == "PATCH":
                return self._allowed("write") or self._update(pull, body)
        return _error(404, "Not Found")

    def _allowed(self, needed: str) -> Answer | None:
        if (needed == "read" and self.permission == "none") or (needed == "write" and self.permission != "write"):
            answer = _error(403, "Resource not accessible by integration")
            return answer[0], answer[1], {"X-Accepted-GitHub-Permissions": f"pull_requests={needed}"}
        return None

    def _list(self, query: str) -> Answer:
        params = {k: v[0] for k, v in parse_qs(query).items()}
        state = params.get("state", "open")
        head, base = params.get("head"), params.get("base")
        listed = [
            p
            for p in self.pulls
            if state in ("all", p["state"]) and head in (None, p["head"]["label"]) and base in (None, p["base"]["ref"])
        ]
        per_page, page = min(int(params.get("per_page", "30")), 100), int(params.get("page", "1"))
        return 200, listed[(page - 1) * per_page : page * per_page], {}

    def _create(self, body: Any, base_url: str) -> Answer:
        if not self.actions_may_open:
            return _error(403, "GitHub Actions is not permitted to create or approve pull requests.")
        problem = _fields(body, _CREATE_FIELDS) or _required(body, ("head", "base", "title"))
        if problem:
            return problem
        head_ref = str(body["head"]).removeprefix(f"{self.owner}:")
        head_sha, base_sha = self._sha(head_ref), self._sha(str(body["base"]))
        for field, sha in (("head", head_sha), ("base", base_sha)):
            if sha is None:
                return _invalid([{"resource": "PullRequest", "field": field, "code": "invalid"}])
        label = f"{self.owner}:{head_ref}"
        if any(
            p["state"] == "open" and p["head"]["label"] == label and p["base"]["ref"] == body["base"]
            for p in self.pulls
        ):
            return _invalid(
                [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {label}.",
                    }
                ]
            )
        if head_sha == base_sha or self._contains(base_sha, head_sha):
            return _invalid(
                [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"No commits between {body['base']} and {head_ref}",
                    }
                ]
            )
        if len(body.get("body") or "") > MAX_BODY:
            return _invalid(
                [
                    {
                        "resource": "Issue",
                        "field": "body",
                        "code": "custom",
                        "message": "body is too long (maximum is 65536 characters)",
                    }
                ]
            )
        number = next(self._numbers)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        pull = {
            "url": f"{base_url}/repos/{self.repository}/pulls/{number}",
            "id": 900_000 + number,
            "node_id": f"PR_fake{number}",
            "html_url": f"{self.server}/{self.repository}/pull/{number}",
            "number": number,
            "state": "open",
            "title": body["title"],
            "body": body.get("body"),
            "draft": bool(body.get("draft", False)),
            "head": {"label": label, "ref": head_ref, "sha": head_sha},
            "base": {"label": f"{self.owner}:{body['base']}", "ref": body["base"], "sha": base_sha},
            "created_at": now,
            "updated_at": now,
        }
        self.pulls.append(pull)
        return 201, pull, {}

    def _update(self, pull: dict[str, Any], body: Any) -> Answer:
        problem = _fields(body, _UPDATE_FIELDS)
        if problem:
            return problem
        if body.get("state") not in (None, "open", "closed"):
            return _invalid([{"resource": "PullRequest", "field": "state", "code": "invalid"}])
        for name in ("title", "body", "state"):
            if name in body:
                pull[name] = body[name]
        if "base" in body:
            pull["base"] = {**pull["base"], "ref": body["base"], "label": f"{self.owner}:{body['base']}"}
        pull["head"]["sha"] = self._sha(pull["head"]["ref"]) or pull["head"]["sha"]
        pull["updated_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 200, pull, {}

    def _sha(self, ref: str) -> str | None:
        if self.remote is None:
            return None
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{ref}^{{commit}}"],
            cwd=self.remote, capture_output=True, text=True, check=False,
        )  # fmt: skip
        return done.stdout.strip() or None

    def _contains(self, base_sha: str | None, head_sha: str | None) -> bool:
        """Whether every commit of head is already in base (nothing to pull)."""
        assert self.remote is not None and base_sha and head_sha
        done = subprocess.run(["git", "merge-base", "--is-ancestor", head_sha, base_sha], cwd=self.remote, check=False)
        return done.returncode == 0


def _error(status: int, message: str) -> Answer:
    return status, {"message": message, "documentation_url": DOCS}, {}


def _invalid(errors: list[dict[str, str]]) -> Answer:
    return 422, {"message": "Validation Failed", "errors": errors, "documentation_url": DOCS}, {}


def _fields(body: Any, allowed: set[str]) -> Answer | None:
    if not isinstance(body, dict):
        return _error(400, "Problems parsing JSON")
    unknown = sorted(set(body) - allowed)
    return (
        _invalid([{"resource": "PullRequest", "field": f, "code": "unknown_field"} for f in unknown])
        if unknown
        else None
    )


def _required(body: dict[str, Any], names: tuple[str, ...]) -> Answer | None:
    missing = [n for n in names if not body.get(n)]
    return (
        _invalid([{"resource": "PullRequest", "field": n, "code": "missing_field"} for n in missing])
        if missing
        else None
    )
