"""Names of checkpoint segments: artifact names that sort in save order, and the cache keys of their copies."""

from __future__ import annotations

import re

_ARTIFACT_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Any checkpoint artifact's name, whatever its state (what `artifact_name` makes).
ARTIFACT_NAME = re.compile(r"^planeteer-[A-Za-z0-9._-]+-attempt([0-9]+)-seq([0-9]+)$")
# The attempt and sequence at the end of a cache key (and of an artifact name).
CACHE_KEY = re.compile(r"-attempt([0-9]+)-seq([0-9]+)$")


def artifact_name(state_name: str, attempt: int, sequence: int) -> str:
    """`planeteer-<state>-attempt<NNN>-seq<NNNNNN>`: zero-padded so that names sort in save order."""
    if attempt < 0 or sequence < 0:
        raise ValueError("attempt and sequence must not be negative")
    return f"planeteer-{safe_state_name(state_name)}-attempt{attempt:03d}-seq{sequence:06d}"


def parse_artifact_name(name: str, state_name: str) -> tuple[int, int] | None:
    """(attempt, sequence) of a checkpoint artifact of this state, or None for any other name."""
    pattern = rf"^planeteer-{re.escape(safe_state_name(state_name))}-attempt([0-9]+)-seq([0-9]+)$"
    match = re.match(pattern, name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def safe_state_name(state_name: str) -> str:
    """Artifact names cannot hold `" : < > | * ? \\ /` or line breaks; keep a conservative set."""
    return _ARTIFACT_UNSAFE.sub("-", state_name).strip("-.")[:100] or "plan"


def default_state_name(plan_id: str) -> str:
    return safe_state_name(plan_id)


def cache_key(state_name: str, run_id: int, attempt: int, sequence: int) -> str:
    return segment_cache_key(run_id, artifact_name(state_name, attempt, sequence))


def segment_cache_key(run_id: int, segment: str) -> str:
    """The cache copy of the segment (artifact) `segment` of run `run_id`."""
    return f"planeteer-run{run_id}-{segment}"


def cache_prefix(state_name: str, run_id: int) -> str:
    return f"planeteer-run{run_id}-planeteer-{safe_state_name(state_name)}-attempt"


def states_in(names: list[str]) -> set[str]:
    """The state names of the checkpoint artifacts among `names` (for `pull` without a plan id)."""
    return {m.group(1) for m in (re.match(r"^planeteer-(.+)-attempt[0-9]+-seq[0-9]+$", n) for n in names) if m}
