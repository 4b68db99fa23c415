"""The action end to end: its entrypoint as subprocesses in a job-like environment, the real Copilot CLI, a
scripted local model, and the fake GitHub services (artifacts and cache over twirp, REST run artifacts).

A scenario is one workflow run: attempt 1 on one machine, then a re-run (attempt 2) on a fresh machine with
a fresh clone of the same commit at another path and a fresh RUNNER_TEMP and HOME (so a fresh Copilot home).
Nothing crosses between the attempts but what the fake services hold, and the model, which like a real
provider outlives the runners (its script is consumed across both attempts and it logs every request).
"""

from __future__ import annotations

import functools
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from action_env import CLI, ActionRun, Machine, parse_outputs, read_json
from action_repository import checkout, make_origin
from checkpoint_forgery import one_segment
from fakes.github_services import FakeGitHubServices
from helpers import git

from planeteer_action.checkpoints.fetch import RunSegments, open_head
from planeteer_action.checkpoints.manifest import CheckpointMeta
from planeteer_action.checkpoints.naming import artifact_name, cache_key
from planeteer_action.checkpoints.segments import read_segment, write_segment
from planeteer_action.checkpoints.zip_io import DEFAULT_LIMITS
from planeteer_action.copilot.offline_model import OFFLINE_MODEL, OfflineModelServer, note_path
from planeteer_action.github.artifacts import ArtifactService
from planeteer_action.github.cache import ActionsCache
from planeteer_action.github.run_artifacts import RunArtifacts
from planeteer_action.plan.session_ids import session_id_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CLI.exists(), reason=f"no Copilot CLI at {CLI}"),
]

PLAN_PATH = ".planeteer/plan.json"
PLAN_ID = "plan-e2e-resume"
STATE = PLAN_ID  # the default state name is the plan id
API_KEY = "sk-provider-e2e-0123456789abcdef"
STATE_KEY = "state-key-e2e-fedcba9876543210"
TRANSCRIPT_MARKER = "zebra-transcript-7f3a"  # in every prompt (task descriptions) and in one answer


def task(task_id: str, title: str, depends_on: list[str], status: str = "pending") -> dict[str, Any]:
    return {
        "id": task_id,
        "title": title,
        "description": f"{title}. {TRANSCRIPT_MARKER}",
        "acceptanceCriteria": [f"{task_id} is done"],
        "dependsOn": depends_on,
        "status": status,
    }


def resume_plan(status: str = "pending") -> dict[str, Any]:
    return {
        "id": PLAN_ID,
        "name": "Resume across attempts",
        "description": "Some tasks finish, some are cut off, one waits for them.",
        "createdAt": "2026-11-24T09:00:00.000Z",
        "updatedAt": "2026-11-24T09:00:00.000Z",
        "tasks": [
            task("notes", "Write the notes", [], status),
            task("files", "Write a source file", [], status),
            task("slow", "A long build", [], status),
            task("thinking", "A slow model answer", [], status),
            task("report", "Report on the notes and the build", ["notes", "slow"], status),
        ],
    }


def chain_plan() -> dict[str, Any]:
    ids = ["one", "two", "three", "four"]
    return {
        "id": "plan-e2e-chain",
        "name": "A chain",
        "tasks": [task(t, f"Step {t}", ids[i - 1 : i]) for i, t in enumerate(ids)],
    }


# Consumed across both attempts. `notes` and `report` get the built-in model (a real bash call that writes
# planeteer-notes/<task>.md); `slow` is cut off inside a tool call, `thinking` while the model "thinks".
SCRIPT: dict[str, list[dict[str, Any]]] = {
    "files": [
        {"bash": "mkdir -p src && echo 'written by the files task' > src/files.txt"},
        {"text": f"files done {TRANSCRIPT_MARKER}"},
    ],
    "slow": [
        {"bash": "echo 'half of the build' > slow-partial.txt && sleep 30"},
        {"text": "slow finished after the re-run"},
    ],
    "thinking": [
        {"delay": 30, "text": "an answer nobody waits for"},
        {"text": "thinking finished after the re-run"},
    ],
}
FINISHED_IN_ATTEMPT_1 = ["notes", "files"]
INTERRUPTED = ["slow", "thinking"]
WRITTEN_IN_ATTEMPT_1 = [note_path("notes"), "src/files.txt", "slow-partial.txt"]


def sid(task_id: str, plan_id: str = PLAN_ID) -> str:
    return session_id_for(plan_id, task_id, 1)


class Workflow:
    """A repository with a plan, and one workflow run of it; each attempt gets a new machine."""

    def __init__(
        self,
        tmp_path: Path,
        fake: FakeGitHubServices,
        run_id: int,
        inputs: dict[str, str],
        plan: dict[str, Any] | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.fake = fake
        self.run_id = run_id
        self.inputs = inputs
        self.origin = tmp_path / "origin"
        self.sha = make_origin(self.origin, plan or resume_plan(), PLAN_PATH)
        self.machines: list[Machine] = []

    def machine(self, attempt: int, **inputs: str) -> Machine:
        root = self.tmp_path / f"attempt{attempt}"
        workspace = checkout(self.origin, self.sha, root / "work" / "planeteer")
        machine = Machine(self.fake, self.run_id, attempt, root, workspace, self.sha, {**self.inputs, **inputs})
        self.machines.append(machine)
        return machine

    def cleanup(self) -> None:
        for machine in self.machines:
            machine.cleanup()


def base_inputs(fake: FakeGitHubServices, **more: str) -> dict[str, str]:
    return {
        "plan": PLAN_PATH,
        "working-directory": ".",
        "concurrency": "4",
        "task-timeout": "2m",
        "on-interrupted": "resume",
        "github-token": fake.rest_token,
        "deliver": "none",  # these scenarios are about checkpoints; test_delivery_e2e delivers
        "isolation": "shared",  # the checkout's own changes travel as a patch; see the worktree scenario below
        **more,
    }


def plan_statuses(machine: Machine) -> dict[str, str]:
    try:
        data = read_json(machine.workspace / PLAN_PATH)
    except (OSError, ValueError):
        return {}  # not there yet, or caught between two writes
    return {t["id"]: t["status"] for t in data["tasks"]}


def copilot_home(machine: Machine, state: str = STATE) -> Path:
    return machine.state_root / state / "copilot-home"


def turn_started(machine: Machine, task_id: str) -> bool:
    events = copilot_home(machine) / "session-state" / sid(task_id) / "events.jsonl"
    return events.is_file() and "user.message" in events.read_text(encoding="utf-8", errors="replace")


def cut_off_point(machine: Machine) -> bool:
    """Where attempt 1 is stopped: two tasks done, one inside its `sleep 30`, one waiting for the model."""
    statuses = plan_statuses(machine)
    return (
        all(statuses.get(t) == "done" for t in FINISHED_IN_ATTEMPT_1)
        and all(statuses.get(t) == "in_progress" for t in INTERRUPTED)
        and (machine.workspace / "slow-partial.txt").is_file()
        and turn_started(machine, "thinking")
    )


def conversation(request: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m.get("content") or "") for m in request["messages"] if m["role"] != "system"]


def describe(run: ActionRun) -> str:
    return "\n".join(
        f"--- {step.step} (exit {step.exit_code}) ---\n{step.stdout}\n{step.stderr}" for step in (run.run, run.finalize)
    )


# Secrets ---------------------------------------------------------------------------------------------------


def unzipped(data: bytes) -> bytes:
    """Every member's bytes of a segment and of the pieces in it (as anyone downloading it would read them)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [archive.read(name) for name in archive.namelist()]
    inner = []
    for member in members:
        with zipfile.ZipFile(io.BytesIO(member)) as piece:
            inner += [piece.read(name) for name in piece.namelist()]
    return b"\n".join(members + inner)


def assert_secrets_kept(machines: list[Machine], fake: FakeGitHubServices, secrets: list[str], *, sealed: bool) -> None:
    """No secret in any step's stdout/stderr (but the runner's own `::add-mask::` commands, which it
    consumes), outputs or summary, the plan files, the state folder's files, or any artifact or cache entry;
    and with a state-key, nothing of the transcripts in the stored bytes either."""
    texts: dict[str, bytes] = {}
    for machine in machines:
        for step_dir in sorted(machine.root.glob("step*")):
            for name in ("stdout", "stderr", "github-output", "step-summary"):
                data = (step_dir / name).read_bytes()
                if name == "stdout":
                    data = b"\n".join(line for line in data.splitlines() if not line.startswith(b"::add-mask::"))
                texts[f"{step_dir}/{name}"] = data
        for path in [*machine.workspace.joinpath(".planeteer").iterdir(), *machine.state_root.rglob("*.json")]:
            if path.is_file():
                texts[str(path)] = path.read_bytes()
    # A step killed between CreateArtifact and its upload leaves a reserved artifact without bytes.
    stored = [(a.name, a.data) for a in fake.artifacts if a.data]
    stored += [(e.key, e.data) for e in fake.cache_entries if e.data]
    assert stored, "nothing was uploaded"
    for name, data in stored:
        texts[f"stored {name}"] = data
        if sealed:
            for piece in read_segment(data, DEFAULT_LIMITS)[1].values():
                with zipfile.ZipFile(io.BytesIO(piece)) as archive:
                    assert sorted(archive.namelist()) == ["checkpoint.sealed", "manifest-public.json"]
            for clear in (TRANSCRIPT_MARKER, "Planeteer task id", "Resume across attempts", "src/files.txt"):
                assert clear.encode() not in data, f"{clear!r} readable in {name}"
        else:
            texts[f"stored {name} (unzipped)"] = unzipped(data)
    if not sealed:  # the control: unsealed checkpoints do hold the transcripts this scan looks for
        assert any(TRANSCRIPT_MARKER.encode() in unzipped(data) for _, data in stored)
    for secret in secrets:
        leaks = [where for where, data in texts.items() if secret.encode() in data]
        assert not leaks, f"secret {secret[:6]}… found in {leaks}"


# 1, 2 and 4: interrupted, then resumed on a fresh machine ---------------------------------------------------


def interrupted_then_rerun(
    tmp_path: Path, fake: FakeGitHubServices, signum: int, rerun: str, state_key: str | None
) -> None:
    with OfflineModelServer(script=SCRIPT, log_path=tmp_path / "model.jsonl") as model:
        inputs = base_inputs(fake, model=OFFLINE_MODEL, **{"provider-base-url": model.base_url})
        inputs["provider-api-key"] = API_KEY
        if state_key:
            inputs["state-key"] = state_key
        flow = Workflow(tmp_path, fake, run_id=81_000 + signum, inputs=inputs)
        try:
            first = flow.machine(1)
            attempt1 = first.interrupted_action(functools.partial(cut_off_point, first), signum)
            check_attempt1(attempt1, signum)
            assert not first.leftovers(), "the steps left processes behind"  # after SIGKILL: the runner's kill
            written = {path: (first.workspace / path).read_text() for path in WRITTEN_IN_ATTEMPT_1}
            requests_before = len(model.requests)

            if rerun == "all":
                # The runner announces the v2 cache as NodeScriptActionHandler does (ACTIONS_CACHE_SERVICE_V2=True).
                assert [e for e in fake.cache_entries if e.data], "attempt 1 wrote no cache copy to resume from"
                assert flow.fake.rerun_all_jobs(flow.run_id) == 2
                assert not [a for a in fake.artifacts if a.run_id == flow.run_id], "re-run all deletes them"
            second = flow.machine(2)
            assert second.workspace != first.workspace and second.runner_temp != first.runner_temp
            assert not any((second.workspace / path).exists() for path in written)
            attempt2 = second.run_action()
            assert (attempt2.run.exit_code, attempt2.finalize.exit_code) == (0, 0), describe(attempt2)
            assert not second.leftovers(), "the steps left processes behind"
            check_attempt2(flow, attempt1, attempt2, model.requests[requests_before:], written, rerun)

            secrets = [API_KEY, fake.rest_token, *first.runtime_tokens, *second.runtime_tokens]
            if state_key:
                secrets.append(state_key)
                assert f"::add-mask::{state_key}" in attempt2.run.stdout
            assert f"::add-mask::{API_KEY}" in attempt1.run.stdout  # registered before anything is printed
            assert_secrets_kept(flow.machines, fake, secrets, sealed=state_key is not None)
        finally:
            flow.cleanup()


def check_attempt1(attempt1: ActionRun, signum: int) -> None:
    expected = 130 if signum == signal.SIGINT else -signal.SIGKILL
    assert attempt1.run.exit_code == expected, describe(attempt1)
    assert attempt1.finalize.exit_code == 0, describe(attempt1)
    if signum == signal.SIGINT:
        assert "run interrupted: 2 done, 2 interrupted, 1 pending" in attempt1.run.stdout
    else:  # nothing was saved on the way out: the final step uploads what the dead step left on disk
        assert "uploaded the final checkpoint" in attempt1.finalize.stdout
    outputs = attempt1.outputs
    assert outputs["status"] == "interrupted"
    assert (outputs["done"], outputs["failed"], outputs["blocked"], outputs["interrupted"]) == ("2", "0", "0", "2")
    assert json.loads(outputs["session-ids"]) == {t: sid(t) for t in FINISHED_IN_ATTEMPT_1 + INTERRUPTED}
    assert outputs["checkpoint-artifact"].startswith(f"planeteer-{STATE}-attempt001-seq")
    assert "Planeteer: Resume across attempts — interrupted" in attempt1.summary
    assert f"**Checkpoint:** `{outputs['checkpoint-artifact']}`" in attempt1.summary


def check_attempt2(
    flow: Workflow,
    attempt1: ActionRun,
    attempt2: ActionRun,
    requests: list[dict[str, Any]],
    written: dict[str, str],
    rerun: str,
) -> None:
    second = flow.machines[-1]
    origin = "cache" if rerun == "all" else "artifact"
    newest1 = attempt1.outputs["checkpoint-artifact"]
    restored = [line for line in attempt2.run.stdout.splitlines() if line.startswith("restored checkpoint")]
    assert restored == [
        f"restored checkpoint {newest1} from the {origin} (run {flow.run_id}, attempt 1, "
        f"save {int(newest1[-6:])}): 4 session(s), 3 changed file(s)"
    ], describe(attempt2)

    # What attempt 1's tasks wrote is back, byte for byte, in the new checkout.
    for path, text in written.items():
        assert (second.workspace / path).read_text() == text

    # Finished tasks cost no model request; the interrupted ones went on with their own conversations.
    assert sorted({r["task_id"] for r in requests}) == ["report", "slow", "thinking"]
    slow = next(r for r in requests if r["task_id"] == "slow")
    talk = conversation(slow)
    assert talk[0][0] == "user" and "Planeteer task id: slow" in talk[0][1]
    assert "You are implementing one task" in talk[0][1]  # attempt 1's first prompt
    calls = [m for m in slow["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    assert [c["name"] for m in calls for c in m["tool_calls"]] == ["bash"]  # attempt 1's `sleep 30` call
    assert any(
        m["role"] == "tool" and m.get("tool_call_id") == calls[0]["tool_calls"][0]["id"] for m in slow["messages"]
    )
    assert talk[-1][0] == "user" and "interrupted before it finished" in talk[-1][1]
    thinking = next(r for r in requests if r["task_id"] == "thinking")
    talk = conversation(thinking)
    assert "You are implementing one task" in talk[0][1] and "Planeteer task id: thinking" in talk[0][1]
    assert talk[-1][0] == "user" and "interrupted before it finished" in talk[-1][1]

    final = read_json(second.workspace / PLAN_PATH)
    for entry in final["tasks"]:
        assert entry["status"] == "done"
        assert {a["sessionId"] for a in entry["attempts"]} == {sid(entry["id"])}
    attempts = {t["id"]: [(a["reason"], a["outcome"]) for a in t["attempts"]] for t in final["tasks"]}
    for task_id in INTERRUPTED:
        assert attempts[task_id][-1] == ("resumed after interruption", "done")
    for task_id in FINISHED_IN_ATTEMPT_1:
        assert attempts[task_id] == [("first start", "done")]
    events = (copilot_home(second) / "session-state" / sid("slow") / "events.jsonl").read_text()
    assert "You are implementing one task" in events and "interrupted before it finished" in events

    outputs = attempt2.outputs
    assert outputs["status"] == "complete"
    assert (outputs["done"], outputs["failed"], outputs["blocked"], outputs["interrupted"]) == ("5", "0", "0", "0")
    assert json.loads(outputs["session-ids"]) == {t["id"]: sid(t["id"]) for t in final["tasks"]}
    assert outputs["plan-path"] == PLAN_PATH
    newest2 = outputs["checkpoint-artifact"]
    assert newest2.startswith(f"planeteer-{STATE}-attempt002-seq")
    assert newest2 in {a.name for a in flow.fake.artifacts if a.finalized and a.attempt == 2}

    summary = attempt2.summary
    assert "## ✅ Planeteer: Resume across attempts — complete" in summary
    assert "5 tasks: 5 done." in summary
    assert (
        f"**Restored** checkpoint `{newest1}` from the {origin} of "
        f"[run {flow.run_id}]({flow.fake.server_url}/{flow.fake.repository}/actions/runs/{flow.run_id}) attempt 1 "
        f"(save {int(newest1[-6:])}): 4 session(s), 3 changed file(s) put back." in summary
    )
    assert "**Recovery** (resume): resumed slow, thinking in their own sessions;" in summary
    assert f"**Checkpoint:** `{newest2}`" in summary
    assert "| slow | done |" in summary and f"`{sid('slow')}`" in summary


@pytest.mark.parametrize(
    ("signum", "rerun", "state_key"),
    [
        (signal.SIGINT, "failed", STATE_KEY),
        (signal.SIGKILL, "failed", None),
        (signal.SIGINT, "all", None),
    ],
    ids=["cancelled-then-rerun-failed-jobs", "killed-then-rerun-failed-jobs", "cancelled-then-rerun-all-jobs"],
)
def test_an_interrupted_run_resumes_on_a_fresh_machine(
    tmp_path: Path, fake: FakeGitHubServices, signum: int, rerun: str, state_key: str | None
) -> None:
    interrupted_then_rerun(tmp_path, fake, signum, rerun, state_key)


# 3: checkpoints that must not be trusted -------------------------------------------------------------------


def meta(run_id: int, attempt: int, base: str, plan_id: str = PLAN_ID) -> CheckpointMeta:
    return CheckpointMeta(
        plan_id=plan_id,
        run_id=str(run_id),
        attempt=attempt,
        sequence=1,
        base_commit=base,
        created_at="2026-11-24T10:00:00.000Z",
        plan_path=PLAN_PATH,
    )


def tamper_piece(segment: bytes) -> bytes:
    """The segment with one byte of its state piece flipped after the head recorded the piece's sha256."""
    head, pieces = read_segment(segment, DEFAULT_LIMITS)
    sha, data = list(pieces.items())[-1]
    pieces[sha] = data[:-20] + bytes([data[-20] ^ 1]) + data[-19:]
    return write_segment(head, pieces)


EVIL_PATCH = b"""diff --git a/../../evil b/../../evil
new file mode 100644
--- /dev/null
+++ b/../../evil
@@ -0,0 +1 @@
+EVIL
"""


def bad_checkpoints(run_id: int, sha: str, key: str | None) -> list[tuple[str, bytes, str]]:
    """(name, the segment, the reason its refusal must give), the n-th one for attempt n. Each would mark every
    task done if trusted. Written as an attacker could (a compromised step of the run, or, sealed, a holder of
    the key elsewhere); a name starting with `cache:` goes into the cache instead of the artifacts."""
    done = json.dumps(resume_plan(status="done")).encode()
    evil_session = f"sessions/{sid('notes')}/../../../../evil"

    def segment(attempt: int, members: dict[str, bytes], *, plan_id: str = PLAN_ID, with_key: str | None) -> bytes:
        plan = done.replace(PLAN_ID.encode(), plan_id.encode())
        return one_segment(STATE, meta(run_id, attempt, sha, plan_id), {"plan.json": plan, **members}, with_key)

    Make = Callable[[int], bytes]
    cases: list[tuple[str, Make, str]]
    if key is None:
        cases = [
            ("corrupt", lambda n: b"PK\x03\x04 truncated, not really a zip", "is not a zip archive"),
            ("tampered", lambda n: tamper_piece(segment(n, {}, with_key=None)), "does not match its sha256"),
            ("path-traversing member", lambda n: segment(n, {"../../evil": b"EVIL"}, with_key=None), "unsafe"),
            ("path-traversing patch", lambda n: segment(n, {"workspace.patch": EVIL_PATCH}, with_key=None), "outside"),
            (
                "foreign plan",
                lambda n: segment(n, {}, plan_id="someone-elses-plan", with_key=None),
                "is of plan 'someone-elses-plan'",
            ),
            ("sealed, no key given", lambda n: segment(n, {}, with_key="some key"), "this checkpoint is encrypted"),
            (
                "cache: path-traversing session file",
                lambda n: segment(n, {evil_session: b"EVIL"}, with_key=None),
                "unsafe or unexpected name",
            ),
        ]
    else:
        cases = [
            ("corrupt", lambda n: b"PK\x03\x04 truncated, not really a zip", "is not a zip archive"),
            ("tampered", lambda n: tamper_piece(segment(n, {}, with_key=key)), "does not match its sha256"),
            ("path-traversing member", lambda n: segment(n, {"../../evil": b"EVIL"}, with_key=key), "unsafe"),
            (
                "foreign plan",
                lambda n: segment(n, {}, plan_id="someone-elses-plan", with_key=key),
                "is of plan 'someone-elses-plan'",
            ),
            ("wrongly keyed", lambda n: segment(n, {}, with_key="not the state key"), "does not decrypt with this"),
            ("plain, although a key is set", lambda n: segment(n, {}, with_key=None), "is not encrypted although"),
            (
                "cache: path-traversing patch",
                lambda n: segment(n, {"workspace.patch": EVIL_PATCH}, with_key=key),
                "outside the checkout",
            ),
        ]
    return [(name, make(attempt), reason) for attempt, (name, make, reason) in enumerate(cases, start=1)]


@pytest.mark.parametrize("state_key", [None, STATE_KEY], ids=["plain", "with-state-key"])
def test_untrustworthy_checkpoints_are_refused_and_the_run_starts_from_the_repository_plan(
    tmp_path: Path, fake: FakeGitHubServices, state_key: str | None
) -> None:
    inputs = base_inputs(fake, offline="true")
    if state_key:
        inputs["state-key"] = state_key
    flow = Workflow(tmp_path, fake, run_id=82_000, inputs=inputs)
    try:
        # Earlier attempts' jobs "uploaded" these, one each (a re-run tries each attempt's newest heads); then a
        # re-run.
        bad = bad_checkpoints(flow.run_id, flow.sha, state_key)
        for attempt, (name, data, _) in enumerate(bad, start=1):
            env = fake.runtime_env(flow.run_id, attempt)
            if name.startswith("cache:"):
                cache = ActionsCache.from_env(env)
                assert cache is not None and cache.save(cache_key(STATE, flow.run_id, attempt, 1), data)
            else:
                artifacts = ArtifactService.from_env(env)
                assert artifacts is not None
                artifacts.upload(artifact_name(STATE, attempt, 1), data)
        second = flow.machine(len(bad) + 1)
        run = second.run_action()

        assert (run.run.exit_code, run.finalize.exit_code) == (0, 0), describe(run)
        warnings = run.run.warnings()
        for attempt, (name, _, reason) in enumerate(bad, start=1):
            origin = "cache" if name.startswith("cache:") else "artifact"
            prefix = f"checkpoint {artifact_name(STATE, attempt, 1)} from the {origin} refused: "
            assert any(w.startswith(prefix) and reason in w for w in warnings), (name, reason, warnings)
        assert "no usable checkpoint: starting from the plan file in the repository" in warnings
        assert not [line for line in run.run.stdout.splitlines() if line.startswith("restored checkpoint")]

        # The repository's plan ran, every task from its first start, and nothing was put back.
        assert run.outputs["status"] == "complete" and run.outputs["done"] == "5"
        final = read_json(second.workspace / PLAN_PATH)
        assert [[a["reason"] for a in t["attempts"]] for t in final["tasks"]] == [["first start"]] * 5
        assert "Restored" not in run.summary
        changed = git(second.workspace, "status", "--porcelain", "--untracked-files=all").splitlines()
        assert sorted(line.split(maxsplit=1)[1] for line in changed) == sorted(
            [PLAN_PATH, ".planeteer/plan.md", *(note_path(t["id"]) for t in final["tasks"])]
        )
        state = copilot_home(second) / "session-state"
        sessions = sorted(p.name for p in state.iterdir() if p.name != ".session-operation-locks")  # the CLI's
        assert sessions == sorted(sid(t["id"]) for t in final["tasks"])
        assert not list(copilot_home(second).glob(".planeteer-restore-*"))
        # `../../evil` was written nowhere: not in the test's folders, not above any folder the action used.
        assert not [p for p in tmp_path.rglob("*") if "evil" in p.name]
        for folder in (second.workspace, copilot_home(second), copilot_home(second) / "session-state"):
            for parent in [folder, *folder.parents][:6]:
                assert not (parent / "evil").exists()
    finally:
        flow.cleanup()


# 4: bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"concurrency": "zero"}, "input `concurrency` must be a whole number of at least 1, got 'zero'"),
        ({"plan": ""}, "input `plan` is required: set it to the plan's path, e.g. .planeteer/my-plan.json"),
        ({"on-interrupted": "later"}, "input `on-interrupted` must be one of resume, fresh, cleanup, got 'later'"),
        ({"plan": "plans/missing.json"}, "plans/missing.json: no such plan file: check the path"),
    ],
    ids=["concurrency-zero", "plan-missing", "on-interrupted-unknown", "plan-file-missing"],
)
def test_bad_input_fails_the_run_step_with_one_clear_error(
    tmp_path: Path, fake: FakeGitHubServices, change: dict[str, str], message: str
) -> None:
    inputs = {**base_inputs(fake, offline="true"), "provider-api-key": API_KEY, "state-key": STATE_KEY, **change}
    inputs = {name: value for name, value in inputs.items() if value}  # the runner sets no INPUT_ for ""
    flow = Workflow(tmp_path, fake, run_id=83_000, inputs=inputs)
    machine = flow.machine(1)
    run = machine.run_action(timeout=60)

    assert run.run.exit_code == 2, describe(run)
    errors = run.run.errors()
    assert len(errors) == 1 and errors[0].endswith(message), errors
    assert "%0A" not in errors[0] and run.run.stderr == ""  # one line, no traceback
    assert run.run.outputs == {}
    assert run.finalize.exit_code == 0 and run.finalize.errors() == []  # the run step has said it
    assert not fake.artifacts and not fake.cache_entries
    assert_secrets_in_logs_only_as_masks(machine, [API_KEY, STATE_KEY, *machine.runtime_tokens])


def test_a_missing_copilot_cli_fails_the_run_step_with_one_clear_error(
    tmp_path: Path, fake: FakeGitHubServices
) -> None:
    flow = Workflow(tmp_path, fake, run_id=83_100, inputs=base_inputs(fake, offline="true"))
    machine = flow.machine(1)
    machine.extra_env = {"COPILOT_CLI_PATH": str(tmp_path / "no-copilot")}
    run = machine.run_action(timeout=60)

    assert run.run.exit_code == 1, describe(run)
    assert run.run.errors() == [
        f"COPILOT_CLI_PATH={tmp_path / 'no-copilot'} is not an executable file; point it at the copilot binary"
        " or unset it and run: npm install -g @github/copilot@1.0.102"
    ]
    assert run.run.stderr == ""
    assert run.finalize.exit_code == 0 and run.outputs["status"] == "incomplete" and run.outputs["done"] == "0"


def assert_secrets_in_logs_only_as_masks(machine: Machine, secrets: list[str]) -> None:
    for step_dir in machine.root.glob("step*"):
        for name in ("stdout", "stderr", "github-output", "step-summary"):
            for line in (step_dir / name).read_text().splitlines():
                if not line.startswith("::add-mask::"):
                    assert not [s for s in secrets if s in line], line


# 5: uploads in the background, pruned as they go ------------------------------------------------------------


def test_uploads_never_hold_up_the_tasks_failures_are_warnings_and_old_checkpoints_are_pruned(
    tmp_path: Path, fake: FakeGitHubServices
) -> None:
    answered: list[tuple[float, str, int]] = []
    first_create = threading.Event()
    handle = fake.handle

    def slow_first_create(method: str, host: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        if target.endswith("/CreateCacheEntry") and not first_create.is_set():
            first_create.set()
            time.sleep(2.5)  # a slow service: the first checkpoint's cache copy takes 2.5 s and then fails
        reply = handle(method, host, target, headers, body)
        answered.append((time.time(), target.rsplit("/", 1)[-1], reply.status if reply else 0))
        return reply

    fake.handle = slow_first_create  # type: ignore[method-assign]
    fake.fail_next("CreateCacheEntry", 403)
    fake.fail_next("CreateArtifact", 403)  # and the artifact that then carries that checkpoint instead
    # The built-in offline model, each task's first answer slowed down so that the run has several states.
    slowed = OfflineModelServer(script={t["id"]: [{"delay": 0.7}] for t in chain_plan()["tasks"]})
    with slowed as model:
        inputs = base_inputs(fake, model=OFFLINE_MODEL, **{"provider-base-url": model.base_url})
        flow = Workflow(tmp_path, fake, run_id=84_000, inputs=inputs, plan=chain_plan())
        try:
            machine = flow.machine(1)
            run = machine.run_action()
        finally:
            flow.cleanup()

    assert (run.run.exit_code, run.finalize.exit_code) == (0, 0), describe(run)
    assert run.outputs["status"] == "complete" and run.outputs["done"] == "4"
    no_copy = [w for w in run.warnings() if w.startswith("could not keep a cache copy of checkpoint")]
    failures = [w for w in run.warnings() if w.startswith("checkpoint upload failed (the next change will try again)")]
    assert len(no_copy) == 1 and len(failures) == 1 and "CreateArtifact failed: HTTP 403" in failures[0], run.warnings()

    # The tasks went on while the first upload hung: the second task started before it even failed.
    failed_at = next(t for t, method, status in answered if method == "CreateCacheEntry" and status == 403)
    final = read_json(machine.workspace / PLAN_PATH)
    started = {t["id"]: datetime.fromisoformat(t["attempts"][0]["startedAt"]) for t in final["tasks"]}
    assert started["two"] < datetime.fromtimestamp(failed_at, UTC)

    # Later checkpoints succeeded, in the cache; the run's last also as an artifact. Artifacts are deleted only
    # once no head a re-run could pick names them (test_checkpoint_pieces prunes a longer run).
    copies = [status for _, method, status in answered if method == "FinalizeCacheEntryUpload" and status == 200]
    finalized = [status for _, method, status in answered if method == "FinalizeArtifact" and status == 200]
    deleted = [status for _, method, status in answered if method == "DeleteArtifact" and status == 200]
    kept = sorted(a.name for a in fake.artifacts if a.finalized)
    assert len(copies) >= 3 and len(finalized) >= 1 and len(deleted) == len(finalized) - len(kept)
    assert run.outputs["checkpoint-artifact"] == kept[-1] != artifact_name("plan-e2e-chain", 1, 1)
    rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
    segments = RunSegments("plan-e2e-chain", flow.run_id, rest, None, pytest.fail)
    for order, _, name in segments.heads(pytest.fail, None):
        head = open_head(segments.head_segment(name, "artifact"), name, order, None, "plan-e2e-chain", flow.run_id)
        assert set(head.segments()) <= set(kept), name
    # Every checkpoint but the first has its cache copy: each holds only what is new, and "Re-run all jobs" needs
    # them all (the first's pieces went into the next copy).
    cached = sorted(e.key for e in fake.cache_entries)
    assert cached == sorted(cache_key("plan-e2e-chain", flow.run_id, 1, int(key[-6:])) for key in cached)
    assert len(cached) == len(copies) and cached[-1].endswith(kept[-1])


def test_the_harness_reads_outputs_as_the_runner_does() -> None:
    text = "a<<EOF_1\nline one\nline two\nEOF_1\nb=plain\nempty<<X\nX\n"
    assert parse_outputs(text) == {"a": "line one\nline two", "b": "plain", "empty": ""}


# Local parity: `planeteer pull` brings a CI run home ---------------------------------------------------------


def test_pull_brings_a_cancelled_run_home_where_run_resumes_it(tmp_path: Path, fake: FakeGitHubServices) -> None:
    with OfflineModelServer(script=SCRIPT) as model:
        inputs = base_inputs(fake, model=OFFLINE_MODEL, **{"provider-base-url": model.base_url})
        flow = Workflow(tmp_path, fake, run_id=91_001, inputs=inputs)
        try:
            first = flow.machine(1)
            attempt1 = first.interrupted_action(functools.partial(cut_off_point, first), signal.SIGINT)
            check_attempt1(attempt1, signal.SIGINT)

            # A person's own checkout of the run's commit, and their own Copilot home.
            local = checkout(flow.origin, flow.sha, tmp_path / "laptop" / "planeteer")
            home = tmp_path / "laptop" / "copilot-home"
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("PLANETEER_", "GITHUB_", "GH_"))},
                "GITHUB_TOKEN": fake.rest_token,
                "COPILOT_CLI_PATH": str(CLI),
                "PLANETEER_PROVIDER_API_KEY": API_KEY,
            }
            planeteer = str(Path(sys.executable).with_name("planeteer"))
            pulled = subprocess.run(
                [planeteer, "pull", "--repository", fake.repository, "--run", str(flow.run_id), "--apply-changes",
                 "--plan", PLAN_PATH, "--workdir", ".", "--copilot-home", str(home), "--api-url", fake.api_url],
                cwd=local, env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert pulled.returncode == 0, pulled.stdout + pulled.stderr
            assert f"restored checkpoint planeteer-{STATE}-attempt001-seq" in pulled.stdout
            assert fake.rest_token not in pulled.stdout + pulled.stderr
            for path in WRITTEN_IN_ATTEMPT_1:  # the finished tasks' work is back in the person's checkout
                assert (local / path).read_text() == (first.workspace / path).read_text()
            status = json.loads(
                subprocess.run([planeteer, "status", "--json", PLAN_PATH], cwd=local, env=env,
                               capture_output=True, text=True, timeout=60).stdout
            )  # fmt: skip
            assert {t["id"]: t["status"] for t in status["tasks"]} == {
                "notes": "done", "files": "done", "slow": "interrupted", "thinking": "interrupted", "report": "pending",
            }  # fmt: skip

            before = len(model.requests)
            # The action's run was shared-tree (its checkpoint carries the working tree's changes): resume it so.
            resumed = subprocess.run(
                [planeteer, "run", "--provider-base-url", model.base_url, "--model", OFFLINE_MODEL,
                 "--copilot-home", str(home), "--isolation", "shared", PLAN_PATH],
                cwd=local, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            assert resumed.returncode == 0, resumed.stderr
            requests = model.requests[before:]
            assert not [r for r in requests if r["task_id"] in FINISHED_IN_ATTEMPT_1]
            slow = next(r for r in requests if r["task_id"] == "slow")
            assert any(m.get("tool_calls") for m in slow["messages"] if m["role"] == "assistant")
            plan = read_json(local / PLAN_PATH)
            assert {t["id"]: (t["status"], t["sessionId"]) for t in plan["tasks"]} == {
                t: ("done", sid(t)) for t in ["notes", "files", "slow", "thinking", "report"]
            }
        finally:
            flow.cleanup()
