"""The action end to end with worktree isolation (its default): attempt 1 is cancelled while tasks work in
their own worktrees, attempt 2 on a fresh machine restores the plan's branches and worktrees from the
checkpoint's bundle and resumes each interrupted task in its own session and worktree; the integration
branch ends with exactly one commit per task that changed something.

The same real Copilot CLI, scripted model and fake GitHub services as test_action_e2e.py, whose plan and
script this reuses; only where the work lives differs.
"""

from __future__ import annotations

import functools
import signal
from pathlib import Path

import pytest
from action_env import CLI, Machine, read_json
from fakes.github_services import FakeGitHubServices
from helpers import git
from test_action_e2e import (
    API_KEY,
    FINISHED_IN_ATTEMPT_1,
    INTERRUPTED,
    PLAN_ID,
    PLAN_PATH,
    SCRIPT,
    STATE,
    Workflow,
    base_inputs,
    conversation,
    describe,
    plan_statuses,
    sid,
    turn_started,
)

from planeteer_action.checkpoints.naming import parse_artifact_name
from planeteer_action.checkpoints.restore import RestoreTarget, restore_checkpoint
from planeteer_action.copilot.offline_model import OFFLINE_MODEL, OfflineModelServer, note_path
from planeteer_action.github.run_artifacts import RunArtifacts
from planeteer_action.worktrees import names

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CLI.exists(), reason=f"no Copilot CLI at {CLI}"),
]

BRANCH = names.integration_branch(PLAN_ID)
CHANGING_TASKS = ["files", "notes", "report", "slow"]  # `thinking` only answers: it adds no commit


def worktree(machine: Machine, task_id: str) -> Path:
    common = Path(git(machine.workspace, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    return names.worktree_path(common, PLAN_ID, task_id)


def cut_off_in_worktrees(machine: Machine) -> bool:
    """Two tasks done (merged), `slow` inside its `sleep 30` in its own worktree, `thinking` waiting."""
    statuses = plan_statuses(machine)
    return (
        all(statuses.get(t) == "done" for t in FINISHED_IN_ATTEMPT_1)
        and all(statuses.get(t) == "in_progress" for t in INTERRUPTED)
        and (worktree(machine, "slow") / "slow-partial.txt").is_file()
        and turn_started(machine, "thinking")
    )


def task_commits(repo: Path, base: str) -> list[str]:
    """The task of every non-merge commit on the integration branch since the base, by its trailer."""
    log = git(repo, "log", "--no-merges", "--format=%(trailers:key=Planeteer-Task,valueonly)", BRANCH, f"^{base}")
    return sorted(line for line in log.splitlines() if line)


def test_a_cancelled_isolated_run_resumes_in_its_worktrees_on_a_fresh_machine(
    tmp_path: Path, fake: FakeGitHubServices
) -> None:
    with OfflineModelServer(script=SCRIPT, log_path=tmp_path / "model.jsonl") as model:
        inputs = base_inputs(fake, model=OFFLINE_MODEL, **{"provider-base-url": model.base_url})
        inputs |= {"provider-api-key": API_KEY, "isolation": "worktree"}
        flow = Workflow(tmp_path, fake, run_id=84_200, inputs=inputs)
        try:
            first = flow.machine(1)
            attempt1 = first.interrupted_action(functools.partial(cut_off_in_worktrees, first), signal.SIGINT)
            assert attempt1.run.exit_code == 130, describe(attempt1)
            assert attempt1.outputs["status"] == "interrupted"
            assert sorted(task_commits(first.workspace, flow.sha)) == sorted(FINISHED_IN_ATTEMPT_1)
            partial = (worktree(first, "slow") / "slow-partial.txt").read_text()
            # The agents worked in their worktrees: the checkout holds nothing of theirs.
            assert not (first.workspace / "slow-partial.txt").exists()
            assert not (first.workspace / "src").exists()
            requests_before = len(model.requests)

            second = flow.machine(2)
            assert not git(second.workspace, "branch", "--list", BRANCH)
            attempt2 = second.run_action()
            assert (attempt2.run.exit_code, attempt2.finalize.exit_code) == (0, 0), describe(attempt2)
            assert not second.leftovers(), "the steps left processes behind"
            newest1 = attempt1.outputs["checkpoint-artifact"]
            restored = [line for line in attempt2.run.stdout.splitlines() if line.startswith("restored checkpoint")]
            assert restored == [
                f"restored checkpoint {newest1} from the artifact (run {flow.run_id}, attempt 1, "
                f"save {int(newest1[-6:])}): 4 session(s), 3 branch(es)"
            ], describe(attempt2)
            assert "3 branch(es) put back." in attempt2.summary

            # Finished tasks cost nothing; the interrupted ones went on in their own sessions.
            requests = model.requests[requests_before:]
            assert sorted({r["task_id"] for r in requests}) == ["report", "slow", "thinking"]
            slow = next(r for r in requests if r["task_id"] == "slow")
            talk = conversation(slow)
            assert "You are implementing one task" in talk[0][1]  # attempt 1's first prompt
            assert talk[-1][0] == "user" and "interrupted before it finished" in talk[-1][1]
            final = read_json(second.workspace / PLAN_PATH)
            attempts = {t["id"]: [(a["reason"], a["outcome"]) for a in t["attempts"]] for t in final["tasks"]}
            for task_id in INTERRUPTED:
                assert attempts[task_id][-1] == ("resumed after interruption", "done")
            for entry in final["tasks"]:
                assert entry["status"] == "done" and {a["sessionId"] for a in entry["attempts"]} == {sid(entry["id"])}

            # One commit per task that changed something; `slow`'s holds what it wrote before the cancel.
            repo = second.workspace
            assert task_commits(repo, flow.sha) == CHANGING_TASKS
            assert git(repo, "show", f"{BRANCH}:slow-partial.txt") + "\n" == partial
            assert git(repo, "show", f"{BRANCH}:{note_path('report')}")
            slow_commit = git(repo, "log", "--no-merges", "--format=%H", "--grep=Planeteer-Task: slow", BRANCH)
            assert git(repo, "show", "-s", "--format=%(trailers:key=Planeteer-Session,valueonly)", slow_commit) == (
                sid("slow")
            )
            # The checkout itself is where it was, holding only the plan's own files.
            assert git(repo, "rev-parse", "HEAD") == flow.sha
            changed = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
            assert changed and all(line.split()[-1].startswith(".planeteer/plan.") for line in changed), changed

            # Attempt 2's heads build on attempt 1's pieces: its bundles start where attempt 1's ended. Restored
            # as a third attempt would, the chain gives the integration branch exactly as attempt 2 left it.
            third = flow.machine(3)
            rest = RunArtifacts(fake.rest_token, fake.repository, fake.api_url)
            target = RestoreTarget(third.workspace / PLAN_PATH, third.workspace, third.root / "home", None)
            warnings: list[str] = []
            again = restore_checkpoint(STATE, flow.run_id, PLAN_ID, rest, None, target, warnings.append)
            assert again is not None and again.head is not None, warnings
            assert again.name == attempt2.outputs["checkpoint-artifact"]
            made_in = {(parse_artifact_name(segment, STATE) or (0, 0))[0] for segment in again.head.segments()}
            assert made_in == {1, 2}
            assert git(third.workspace, "rev-parse", BRANCH) == git(repo, "rev-parse", BRANCH)
        finally:
            flow.cleanup()
