"""Why a checkpoint cannot be saved or used: one type per reason, so callers can tell a refusal from a fault."""

from __future__ import annotations

from planeteer_action.errors import PlaneteerError


class CheckpointError(PlaneteerError):
    """A checkpoint cannot be saved or used; a run then falls back to the repository's plan file."""


class CheckpointInvalid(CheckpointError):
    """The checkpoint is damaged, altered, unsafe to unpack, or not a planeteer checkpoint."""


class CheckpointKeyMismatch(CheckpointError):
    """The state-key does not fit the checkpoint: missing, wrong, or given for a plain checkpoint."""


class CheckpointTooLarge(CheckpointError):
    """The checkpoint or one of its files exceeds a limit."""


class CheckpointOfOtherPlan(CheckpointError):
    """The checkpoint belongs to another plan."""


class CheckpointRestoreFailed(CheckpointError):
    """The session folders could not be written into the Copilot home."""


class CheckpointOfOtherRun(CheckpointError):
    """A piece was made for another workflow run than the head that names it."""
