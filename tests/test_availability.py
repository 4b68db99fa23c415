"""Which services a step can use, and the one note for each a re-run would miss (never silence)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes.github_services import FakeGitHubServices

from planeteer_action.github.availability import services


@pytest.fixture
def fake() -> Iterator[FakeGitHubServices]:
    with FakeGitHubServices() as services_:
        yield services_


def test_a_github_com_job_has_everything_and_nothing_to_say(fake: FakeGitHubServices) -> None:
    offer = services(fake.runtime_env(1))
    assert (offer.artifacts, offer.cache_read, offer.cache_write, offer.notes) == (True, True, True, ())


def test_without_artifacts_v4_the_note_names_the_server_not_the_token(fake: FakeGitHubServices) -> None:
    (note,) = services(fake.runtime_env(1, ghes=True)).notes
    assert "no artifact service v4" in note and "GitHub Enterprise Server" in note
    assert "re-run resumes nothing" in note and "recovery within this job" in note
    assert "runtime token" not in note


def test_without_the_token_the_note_says_so(fake: FakeGitHubServices) -> None:
    env = {k: v for k, v in fake.runtime_env(1).items() if k != "ACTIONS_RUNTIME_TOKEN"}
    (note,) = services(env).notes
    assert "did not receive the job's runtime token" in note and "action.yml" in note


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ACTIONS_CACHE_SERVICE_V2": ""}, "did not announce the cache service v2"),
        ({"GITHUB_SERVER_URL": "https://ghes.example.internal"}, "GitHub Enterprise Server has no cache service v2"),
        ({"ACTIONS_CACHE_MODE": "read"}, "cache mode is 'read', which permits no writes"),
        ({"ACTIONS_CACHE_MODE": "none"}, "cache mode is 'none', which permits no writes"),
    ],
)
def test_a_missing_cache_copy_is_said_once_with_what_it_costs(
    fake: FakeGitHubServices, change: dict[str, str], reason: str
) -> None:
    offer = services({**fake.runtime_env(1), **change})
    assert offer.artifacts and not offer.cache_write
    (note,) = offer.notes
    assert note.startswith("No cache copy of checkpoints: ") and reason in note
    assert "Re-run all jobs will start from the repository's plan" in note
