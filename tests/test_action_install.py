"""action.yml's install steps, run as the runner runs them: each `run:` script under bash, with a `run:` step's
environment (runner_env) and the step's `env:` expanded from action.yml.

The install is cached and reused, so what decides whether a runner runs the action's current code is the key
step (a hash of the action's own files: `hashFiles()` sees only the workspace, and inside a composite action
`github.action_ref` is the nested action's ref) and the install step's stamp (a venv built for another key
is rebuilt).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from action_env import ACTION, REPO, parse_outputs
from runner_env import evaluate, step_environment

from planeteer_action.copilot.runtime import PINNED_CLI_VERSION

PYTHON_VERSION = "3.11.7"
FILE_COMMANDS = ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STATE", "GITHUB_STEP_SUMMARY")


def step(name_start: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in ACTION["runs"]["steps"] if str(s.get("name", "")).startswith(name_start)]
    (only,) = found
    return only


def copy_action(dest: Path) -> Path:
    """The action's folder as the runner downloads it: the repository's files (this working tree's versions)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for relative in filter(None, listed.decode().split("\0")):
        source = REPO / relative
        if source.is_file() and not source.is_symlink():
            (dest / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / relative)
    return dest


def run_step(
    spec: dict[str, Any], root: Path, context: Mapping[str, str], extra: Mapping[str, str] = {}
) -> dict[str, str]:
    """Run one `run:` step of action.yml; returns its outputs (GITHUB_OUTPUT). A failure shows its log."""
    step_dir = root / f"step{len(list(root.glob('step*')))}"
    step_dir.mkdir(parents=True)
    files = {name: step_dir / name.lower() for name in FILE_COMMANDS}
    for path in files.values():
        path.touch()  # the runner creates them before the step starts
    runner = {
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        **{name: str(path) for name, path in files.items()},
        "GITHUB_ACTION_PATH": context["github.action_path"],
        "RUNNER_OS": context.get("runner.os", "Linux"),
        "RUNNER_ARCH": context.get("runner.arch", "X64"),
        "RUNNER_TEMP": str(root),
    }
    env_spec = {name: evaluate(str(value), context) for name, value in spec.get("env", {}).items()}
    base = {"PATH": os.environ["PATH"], "HOME": str(root / "home"), "LANG": "C.UTF-8", **extra}
    env = step_environment("run", runner, step_env={**base, **env_spec})
    assert spec["shell"] == "bash"
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", spec["run"]],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return parse_outputs(files["GITHUB_OUTPUT"].read_text(encoding="utf-8"))


def key_of(action_path: Path, tmp_path: Path, **context: str) -> str:
    base = {
        "github.action_path": str(action_path),
        "steps.python.outputs.python-version": PYTHON_VERSION,
        "runner.os": "Linux",
        "runner.arch": "X64",
    }
    outputs = run_step(step("Key the install"), tmp_path / "key-runs", {**base, **context})
    assert outputs["copilot-version"] == PINNED_CLI_VERSION
    return outputs["key"]


def test_the_install_is_cached_under_the_key_step_output() -> None:
    cache = next(s for s in ACTION["runs"]["steps"] if str(s.get("uses", "")).startswith("actions/cache@"))
    key_step = step("Key the install")
    assert cache["with"]["key"] == f"${{{{ steps.{key_step['id']}.outputs.key }}}}"
    assert "hashFiles" not in str(ACTION) and "action_ref" not in str(ACTION)
    install = step("Install planeteer")
    assert install["env"]["INSTALL_KEY"] == cache["with"]["key"]


def test_changing_any_file_of_the_action_changes_the_install_key(tmp_path: Path) -> None:
    action = copy_action(tmp_path / "action")
    key = key_of(action, tmp_path)
    assert key.startswith(f"planeteer-Linux-X64-py{PYTHON_VERSION}-cli{PINNED_CLI_VERSION}-")
    # The same files elsewhere (each runner keeps actions under its own _actions folder): the same key.
    assert key_of(copy_action(tmp_path / "elsewhere"), tmp_path) == key

    changes: dict[str, Callable[[Path], object]] = {
        "pyproject.toml": lambda p: p.write_text(p.read_text() + "\n# 0.1.1\n"),
        "planeteer_action/engine/executor.py": lambda p: p.write_text(p.read_text() + "\n"),
        "planeteer_action/action/launch.js": lambda p: p.write_text(p.read_text().replace("'use strict'", "")),
        "action.yml": lambda p: p.write_text(p.read_text() + "\n"),
        "README.md": lambda p: p.write_text(""),
    }  # fmt: skip
    for relative, change in changes.items():
        path = action / relative
        original = path.read_bytes()
        change(path)
        assert key_of(action, tmp_path) != key, f"changing {relative} kept the key"
        path.write_bytes(original)
    (action / "planeteer_action" / "new_module.py").write_text("X = 1\n")
    assert key_of(action, tmp_path) != key, "a new file kept the key"
    (action / "planeteer_action" / "new_module.py").unlink()
    (action / "planeteer_action" / "plan" / "store.py").rename(action / "planeteer_action" / "plan" / "stored.py")
    assert key_of(action, tmp_path) != key, "a renamed file kept the key"
    (action / "planeteer_action" / "plan" / "stored.py").rename(action / "planeteer_action" / "plan" / "store.py")
    assert key_of(action, tmp_path) == key  # back to the same files: back to the same key

    # What else the install depends on: the Python, the runner's OS and architecture.
    assert key_of(action, tmp_path, **{"steps.python.outputs.python-version": "3.12.1"}) != key
    assert key_of(action, tmp_path, **{"runner.os": "macOS"}) != key
    assert key_of(action, tmp_path, **{"runner.arch": "ARM64"}) != key


def test_a_venv_built_for_another_key_is_reinstalled_and_one_built_for_this_key_is_kept(tmp_path: Path) -> None:
    action = copy_action(tmp_path / "action")
    # pip builds the package as on a runner (its build backend from the index) but skips the dependencies,
    # which are not what this tests; npm is a recorder.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm_log = tmp_path / "npm.log"
    (bin_dir / "npm").write_text(
        '#!/bin/bash\necho "$*" >> "$NPM_LOG"\n'
        'mkdir -p "$3/node_modules/.bin" && touch "$3/node_modules/.bin/copilot"\n'
    )
    (bin_dir / "npm").chmod(0o755)
    extra = {
        **{name: value for name, value in os.environ.items() if name.startswith("PIP_")},  # the index to use
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "NPM_LOG": str(npm_log),
        "PIP_NO_DEPS": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    root = tmp_path / "runner"
    home = root / "home" / ".planeteer-action"

    def install(key: str) -> str:
        context = {
            "github.action_path": str(action),
            "steps.python.outputs.python-path": sys.executable,
            "steps.install-key.outputs.key": key,
            "steps.install-key.outputs.copilot-version": PINNED_CLI_VERSION,
        }
        run_step(step("Install planeteer"), root, context, extra)
        return installed_main()

    def installed_main() -> str:
        (found,) = home.glob("venv/lib/python*/site-packages/planeteer_action/action/main.py")
        return found.read_text(encoding="utf-8")

    main = action / "planeteer_action" / "action" / "main.py"
    assert install("planeteer-key-v1") == main.read_text()
    assert npm_log.read_text().split() == ["install", "--prefix", str(home / "tools"), "--no-audit", "--no-fund",
                                           "--loglevel=error", f"@github/copilot@{PINNED_CLI_VERSION}"]  # fmt: skip

    # The action is upgraded: its files change, so does the key; the cached venv holds the old code.
    main.write_text(main.read_text() + "\n# upgraded\n")
    assert install("planeteer-key-v2").endswith("# upgraded\n"), "the old venv was kept: the old code would run"
    # The same key again: nothing is reinstalled (a file the install would remove survives), the CLI neither.
    sentinel = home / "venv" / "kept"
    sentinel.touch()
    install("planeteer-key-v2")
    assert sentinel.exists()
    assert len(npm_log.read_text().splitlines()) == 1
