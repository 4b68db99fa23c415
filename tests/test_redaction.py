"""Secrets in messages: masked as whole values, only when long enough to be secrets; no credentials from URLs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness import PLANETEER, copilot_cli

from planeteer_action.copilot.agent import CopilotAgent
from planeteer_action.github._twirp import scrub
from planeteer_action.redaction import mask, redact_url

KEY = "sk-live-4f9a2c7e1b"


def test_a_short_key_does_not_mangle_messages() -> None:
    message = "the request exceeds the limit; try again"
    assert mask(message, ["e"]) == message
    assert scrub(message, ["e"]) == message
    agent = CopilotAgent(Path("/nonexistent/copilot"), provider={"type": "openai", "base_url": "x", "api_key": "e"})
    assert agent._clean(RuntimeError(message)) == message


def test_secrets_are_masked_as_whole_values_and_wherever_they_stand_alone() -> None:
    text = f"Bearer {KEY}; url=https://h/?k={KEY}&x=1 ({KEY}) {KEY}suffix prefix{KEY}"
    assert mask(text, [KEY]) == f"Bearer ***; url=https://h/?k=***&x=1 (***) {KEY}suffix prefix{KEY}"
    # The longer of two overlapping secrets is masked whole, not left half-shown.
    assert mask(f"token {KEY}-extra end", [KEY, f"{KEY}-extra"]) == "token *** end"
    assert scrub(f"{KEY}suffix and {KEY}", [KEY]) == f"{KEY}suffix and ***"
    agent = CopilotAgent(Path("/nonexistent/copilot"), provider={"type": "openai", "base_url": "x", "api_key": KEY})
    assert agent._clean(RuntimeError(f"401 for key {KEY}\nretry")) == "401 for key *** retry"


def test_urls_lose_userinfo_query_and_fragment() -> None:
    assert redact_url("https://alice:hunter2secret@llm.example.com:8443/v1?api-key=abc123456789#frag") == (
        "https://llm.example.com:8443/v1?<redacted>"
    )
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_doctor_shows_the_provider_url_without_its_credentials(tmp_path: Path) -> None:
    url = "https://alice:hunter2secret@llm.example.com/v1?api-key=query-secret-123"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANETEER_")}
    env.update(PLANETEER_PROVIDER_BASE_URL=url, PLANETEER_PROVIDER_API_KEY=KEY, COPILOT_CLI_PATH=copilot_cli())
    for extra in ([], ["--json"]):
        done = subprocess.run(
            [str(PLANETEER), "doctor", *extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        shown = done.stdout + done.stderr
        assert "llm.example.com/v1?<redacted>" in shown, shown
        for secret in ("hunter2secret", "query-secret-123", "alice", KEY):
            assert secret not in shown, shown
