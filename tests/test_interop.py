"""Interop, both directions, with GitHub's official JavaScript clients (@actions/artifact, @actions/cache).

The official clients run in Node against the same local fake services planeteer talks to, given the
environment a job step gets. What planeteer uploads, they list and download with the right digest; what they
upload, planeteer lists and downloads. The same for cache entries. The packages are installed from npm into
`.interop/` on first use (under a lock, so parallel runs install once); `make interop` runs only this file.
Where npm or its registry cannot be reached, the tests skip and say why.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.github_services import FakeGitHubServices

from planeteer_action.github.artifacts import ArtifactService
from planeteer_action.github.cache import ActionsCache
from planeteer_action.github.run_artifacts import RunArtifacts

REPO = Path(__file__).resolve().parents[1]
INTEROP = Path(os.environ.get("PLANETEER_INTEROP_DIR") or REPO / ".interop")
# The official clients' current releases (npm dist-tag `latest`, 2026-11-29).
PACKAGES = ("@actions/artifact@6.2.1", "@actions/cache@6.3.0")
DRIVER = Path(__file__).with_name("interop") / "official_clients.mjs"
_UNREACHABLE = ("ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "ENETUNREACH", "network")
RUN = 8800


def official_clients() -> Path:
    """The node_modules folder holding PACKAGES, installed on first use; skips where npm cannot get them."""
    stamp = INTEROP / "installed.txt"
    wanted = "\n".join(PACKAGES)
    if stamp.is_file() and stamp.read_text() == wanted:
        return INTEROP / "node_modules"
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node and npm are needed to run GitHub's official JavaScript clients")
    INTEROP.mkdir(parents=True, exist_ok=True)
    with (INTEROP / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.is_file() and stamp.read_text() == wanted):
            command = ["npm", "install", "--prefix", str(INTEROP), "--no-audit", "--no-fund", "--loglevel=error"]
            try:
                done = subprocess.run([*command, *PACKAGES], capture_output=True, text=True, timeout=600)
            except subprocess.TimeoutExpired:
                pytest.skip("npm install of the official clients timed out (registry unreachable?)")
            if done.returncode != 0:
                if any(sign in done.stderr for sign in _UNREACHABLE):
                    pytest.skip(f"the npm registry is unreachable: {done.stderr.strip().splitlines()[-1]}")
                raise AssertionError(f"npm install {' '.join(PACKAGES)} failed:\n{done.stderr}")
            stamp.write_text(wanted)
    return INTEROP / "node_modules"


@pytest.fixture(scope="module")
def modules() -> Path:
    return official_clients()


@pytest.fixture
def fake() -> Iterator[FakeGitHubServices]:
    with FakeGitHubServices() as services:
        yield services


class OfficialClient:
    """One job step running the official clients: its own workspace and RUNNER_TEMP, the fake's env."""

    def __init__(self, modules: Path, fake: FakeGitHubServices, root: Path) -> None:
        self.workspace = root / "workspace"
        for folder in (self.workspace, root / "temp", root / "home"):
            folder.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root / "home"),
            "INTEROP_MODULES": str(modules),
            "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_TEMP": str(root / "temp"),
            **fake.runtime_env(RUN, 1),
        }

    def __call__(self, command: str, *args: str) -> Any:
        done = subprocess.run(
            ["node", str(DRIVER), command, *args],
            cwd=self.workspace,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        return json.loads(line.removeprefix("RESULT "))


def planeteer_artifacts(fake: FakeGitHubServices) -> ArtifactService:
    found = ArtifactService.from_env(fake.runtime_env(RUN, 1))
    assert found is not None
    return found


def a_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


MEMBERS = {"plan.json": b'{"id": "interop"}\n', "sessions/s1/events.jsonl": os.urandom(3 * 1024 * 1024).hex().encode()}


def test_the_official_client_lists_and_downloads_planeteers_artifact(
    modules: Path, fake: FakeGitHubServices, tmp_path: Path
) -> None:
    data = a_zip(MEMBERS)  # over 8 MiB: it goes up in blocks
    artifact_id = planeteer_artifacts(fake).upload("planeteer-interop", data)
    client = OfficialClient(modules, fake, tmp_path)

    listed = client("artifact-list")["artifacts"]
    (artifact,) = [a for a in listed if a["name"] == "planeteer-interop"]
    assert (artifact["id"], artifact["size"]) == (artifact_id, len(data))
    assert artifact["digest"] == f"sha256:{hashlib.sha256(data).hexdigest()}"

    downloaded = client("artifact-download", str(artifact_id), str(tmp_path / "out"), artifact["digest"])
    assert downloaded["digestMismatch"] is False
    for name, content in MEMBERS.items():  # the blob is declared a zip, so the client unpacked it
        assert (tmp_path / "out" / name).read_bytes() == content


def test_planeteer_lists_and_downloads_the_official_clients_artifact(
    modules: Path, fake: FakeGitHubServices, tmp_path: Path
) -> None:
    client = OfficialClient(modules, fake, tmp_path)
    for name, content in MEMBERS.items():
        (client.workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (client.workspace / name).write_bytes(content)
    uploaded = client("artifact-upload", "official-upload", str(client.workspace), *MEMBERS)

    artifacts = planeteer_artifacts(fake)
    (ref,) = artifacts.list("official-upload")
    assert (ref.id, ref.size, ref.digest) == (uploaded["id"], uploaded["size"], f"sha256:{uploaded['digest']}")
    data = artifacts.download("official-upload")
    assert hashlib.sha256(data).hexdigest() == uploaded["digest"]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert {name: archive.read(name) for name in MEMBERS} == MEMBERS
    # and over REST, the re-run path
    assert RunArtifacts(fake.rest_token, fake.repository, fake.api_url).download(ref.id) == data


def test_planeteer_restores_the_official_clients_cache_entry(
    modules: Path, fake: FakeGitHubServices, tmp_path: Path
) -> None:
    client = OfficialClient(modules, fake, tmp_path / "official")
    (client.workspace / "state").mkdir()
    (client.workspace / "state" / "notes.txt").write_text("saved by @actions/cache\n")
    assert client("cache-save", "interop-official-1", "state")["cacheId"] > 0
    version = client("cache-version", "state")["version"]

    cache = ActionsCache(fake.results_url, client.env["ACTIONS_RUNTIME_TOKEN"], version=version)
    found = cache.restore("interop-official-1", [])

    assert found is not None and found[0] == "interop-official-1"
    archive = tmp_path / "entry.tar"
    archive.write_bytes(found[1])
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(unpacked)], check=True, timeout=60)  # tar detects zstd/gzip
    assert (unpacked / "state" / "notes.txt").read_text() == "saved by @actions/cache\n"


def test_the_official_client_restores_planeteers_cache_entry(
    modules: Path, fake: FakeGitHubServices, tmp_path: Path
) -> None:
    client = OfficialClient(modules, fake, tmp_path / "official")
    wanted = client("cache-version", "state")
    source = tmp_path / "source"
    (source / "state").mkdir(parents=True)
    (source / "state" / "notes.txt").write_text("saved by planeteer\n")
    entry = tmp_path / "entry.tar"
    with tarfile.open(entry, "w") as tar:
        tar.add(source / "state", arcname="state")
    if wanted["compression"] == "gzip":
        subprocess.run(["gzip", "-n", str(entry)], check=True, timeout=60)
        entry = entry.with_suffix(".tar.gz")
    else:
        subprocess.run(["zstd", "-q", "--rm", str(entry)], check=True, timeout=60)
        entry = entry.with_suffix(".tar.zst")

    cache = ActionsCache(fake.results_url, client.env["ACTIONS_RUNTIME_TOKEN"], version=wanted["version"])
    assert cache.save("interop-planeteer-1", entry.read_bytes())

    assert client("cache-restore", "interop-planeteer-1", "state")["matchedKey"] == "interop-planeteer-1"
    assert (client.workspace / "state" / "notes.txt").read_text() == "saved by planeteer\n"
