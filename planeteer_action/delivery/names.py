"""The integration branch's name, as the issue-9 design fixes it for every part that needs it.

A copy of `integration_branch` from the design's `planeteer_action/worktrees/names.py`, which the core's
branch adds; it is not on main yet. Once it is, this module goes and delivery imports that one.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def integration_branch(plan_id: str) -> str:
    """`planeteer/<plan id>`, the id made a valid ref component (the rules of `git check-ref-format`):
    keep `[A-Za-z0-9._-]`, others become `-`, no leading `.`/`-`, never `..`, not ending in `.lock`."""
    safe = _UNSAFE.sub("-", plan_id)
    while ".." in safe:
        safe = safe.replace("..", ".")
    safe = safe.lstrip(".-")
    while safe.endswith((".lock", ".")):
        safe = safe.removesuffix(".lock").rstrip(".")
    return f"planeteer/{safe or 'plan'}"
