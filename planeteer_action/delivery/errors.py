"""What can stop a delivery: before the run (the token or the remote cannot do it) and after it."""

from __future__ import annotations

from planeteer_action.errors import EXIT_TASKS_FAILED, PlaneteerError


class DeliveryRefused(PlaneteerError):
    """Checked before any agent starts: delivery as asked cannot work (a permission, the remote, the branch).

    The message names what to add, or says to choose `deliver: none`."""


class DeliveryFailed(PlaneteerError):
    """The push or the pull request failed after the run; the work is safe in the local integration branch."""

    exit_code = EXIT_TASKS_FAILED
