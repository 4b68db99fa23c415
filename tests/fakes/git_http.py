"""A git smart-HTTP remote that wants a token, as github.com does: `git http-backend` behind HTTP basic auth.

Pushes without credentials are answered 401 with a Basic challenge (git then asks its credential helpers);
with `Basic base64(<any user>:<token>)` they reach http-backend, which serves the bare repositories under
`root`. Every Authorization header seen is kept in `authorizations`, so a test can tell how the token came.
A `read_only` server refuses receive-pack (a push) with 403, like a token without `contents: write`.
"""

from __future__ import annotations

import base64
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class GitHttpServer:
    def __init__(self, root: Path, token: str, *, read_only: bool = False) -> None:
        self.root = root
        self.token = token
        self.read_only = read_only
        self.authorizations: list[str] = []
        self.pushes = 0
        """receive-pack POSTs that reached the repository: pushes that sent updates."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.git = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> GitHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}"

    def authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        _, _, password = base64.b64decode(encoded).decode().partition(":")
        return password == self.token


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        git: GitHttpServer = self.server.git  # type: ignore[attr-defined]
        header = self.headers.get("Authorization", "")
        if header:
            git.authorizations.append(header)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not git.authorized(header):
            return self._answer(401, {"WWW-Authenticate": 'Basic realm="GitHub"'}, b"")
        target = urlsplit(self.path)
        if git.read_only and ("git-receive-pack" in target.path or "service=git-receive-pack" in target.query):
            return self._answer(403, {}, b"Permission to octo-org/planeteer.git denied to github-actions[bot].\n")
        env = {
            "GIT_PROJECT_ROOT": str(git.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": "x-access-token",
            "PATH_INFO": target.path,
            "QUERY_STRING": target.query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.receivepack",
            "GIT_CONFIG_VALUE_0": "true",
        }
        if self.command == "POST" and target.path.endswith("/git-receive-pack"):
            git.pushes += 1
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line)
        status = int(headers.pop("Status", "200").split()[0])
        self._answer(status, headers, payload)

    do_POST = do_GET

    def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""
