"""Planeteer's session id scheme: every id it creates says which plan and task it belongs to.

`planeteer-<plan fingerprint>-<task slug>-a<attempt>`. The fingerprint is derived from the plan id, so
cleanup can prove a session is this plan's (or some plan's) without trusting anything but the id.
The Copilot CLI accepts ids made of letters, digits, `_` and `-` (dots and slashes are rejected).
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "planeteer-"
_SLUG_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_ID_SHAPE = re.compile(r"^planeteer-([0-9a-f]{8})-([a-z0-9_-]+)-a([0-9]+)$")


def plan_fingerprint(plan_id: str) -> str:
    return hashlib.sha256(plan_id.encode("utf-8")).hexdigest()[:8]


def task_slug(task_id: str) -> str:
    """A readable, id-safe form of the task id; a short hash keeps distinct ids distinct."""
    slug = _SLUG_UNSAFE.sub("-", task_id.lower()).strip("-")[:40]
    if slug != task_id:
        slug = f"{slug}-{hashlib.sha256(task_id.encode('utf-8')).hexdigest()[:6]}".lstrip("-")
    return slug


def session_id_for(plan_id: str, task_id: str, attempt: int) -> str:
    return f"{PREFIX}{plan_fingerprint(plan_id)}-{task_slug(task_id)}-a{attempt}"


def is_planeteer_session(session_id: str) -> bool:
    return _ID_SHAPE.match(session_id) is not None


def belongs_to_plan(session_id: str, plan_id: str) -> bool:
    match = _ID_SHAPE.match(session_id)
    return match is not None and match.group(1) == plan_fingerprint(plan_id)


def is_task_session(session_id: str, plan_id: str, task_id: str) -> bool:
    """Whether `session_id` is one planeteer makes for this task of this plan (of any attempt)."""
    match = _ID_SHAPE.match(session_id)
    attempt = int(match.group(3)) if match else 0
    return attempt >= 1 and session_id == session_id_for(plan_id, task_id, attempt)
