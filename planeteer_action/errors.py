"""One exception hierarchy; every message is one line that names the problem and the fix."""

from __future__ import annotations

EXIT_OK = 0
EXIT_TASKS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class PlaneteerError(Exception):
    """A problem the person can fix; `exit_code` is what the command exits with."""

    exit_code = EXIT_BAD_INPUT


class PlanInvalid(PlaneteerError):
    """The plan file cannot be read or is not a runnable plan. Nothing on disk was changed."""


class PlanLocked(PlaneteerError):
    """Another live executor owns the plan."""


class PlanUnwritable(PlaneteerError):
    """The plan could not be saved where it is (no permission, a read-only or immutable file or folder, a
    linked lock file): refused before anything changed."""


class ConfigError(PlaneteerError):
    """An option, environment variable or action input is wrong."""


class PlanSaveFailed(PlaneteerError):
    """The plan could not be written; the run stops, since it could no longer be recovered."""

    exit_code = EXIT_TASKS_FAILED
