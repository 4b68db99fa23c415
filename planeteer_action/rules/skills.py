"""The plan's skills (`"skills": [{"name": ..., "enabled": ...}]`, as the TUI writes them) found as folders.

An enabled skill is the folder `<root>/<name>/`, the first root that has it winning: the repository's
`.github/skills/`, then each `--skills-dir`. A disabled skill is never looked up, and an enabled one that no
root holds is an error before anything runs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from planeteer_action.plan.model import Plan
from planeteer_action.rules.record import fingerprint

REPOSITORY_SKILLS = Path(".github") / "skills"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def skill_roots(working_directory: Path, extra: Sequence[Path]) -> list[Path]:
    return [working_directory / REPOSITORY_SKILLS, *extra]


def find_skills(plan: Plan, roots: Sequence[Path]) -> tuple[dict[str, Path], list[str]]:
    """The enabled skills' folders by name, and one problem line per enabled skill that cannot be used."""
    found: dict[str, Path] = {}
    problems: list[str] = []
    for skill in plan.skills:
        if not skill.enabled:
            continue
        if not _NAME.fullmatch(skill.name) or skill.name.strip(".") == "":
            problems.append(f"skill {skill.name!r}: not a folder name: use letters, digits, '.', '_' and '-'")
            continue
        folder = next((root / skill.name for root in roots if (root / skill.name).is_dir()), None)
        if folder is None:
            places = " or ".join(str(root / skill.name) for root in roots)
            problems.append(
                f"skill {skill.name!r} is enabled but there is no folder {places}: "
                'add it, pass --skills-dir, or set its "enabled" to false in the plan'
            )
        else:
            found[skill.name] = folder.resolve()
    return found, problems


def folder_fingerprint(folder: Path) -> str:
    """A hash of every file's relative path and content (links by their target), in a stable order."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix().encode()
        if path.is_symlink():
            digest.update(b"L" + relative + b"\0" + str(path.readlink()).encode() + b"\0")
        elif path.is_file():
            digest.update(b"F" + relative + b"\0" + fingerprint(path.read_bytes()).encode() + b"\0")
    return fingerprint(digest.digest())
