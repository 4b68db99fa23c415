"""The package's shape, as README's Layout table describes it: layers import only downwards, the two doors
never import each other, only `copilot/` touches the Copilot SDK, and no module or function outgrows a read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "planeteer_action"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# What each part may import from the package, besides itself and the top-level helpers (errors, gitinfo, gitrun,
# redaction).
ALLOWED = {
    "plan": set(),
    "github": set(),
    "engine": {"plan"},
    "worktrees": {"plan"},
    "copilot": {"engine", "plan"},
    "rules": {"engine", "plan"},  # the user's rules (settings file, flags, MCP config, skills) resolved per task
    "checkpoints": {"plan", "github", "worktrees"},  # the names of the branches and worktrees it carries
    "runner": {"plan", "engine", "copilot", "worktrees", "rules"},
    "delivery": {"plan", "engine", "github", "worktrees"},
    "cli": {"plan", "engine", "copilot", "checkpoints", "github", "runner", "delivery", "worktrees", "rules"},
    "action": {"plan", "engine", "checkpoints", "github", "runner", "delivery", "rules"},
}
TOP_LEVEL = {"errors", "gitinfo", "gitrun", "redaction", "__init__", "__main__"}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported(path: Path) -> set[str]:
    """Absolute names of the modules `path` imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_part_imports_only_the_parts_below_it(path: Path) -> None:
    part = part_of(path)
    if part in TOP_LEVEL:
        return
    used = {
        name.split(".")[1] for name in imported(path) if name.startswith("planeteer_action.") and name.count(".") >= 1
    }
    wrong = used - ALLOWED[part] - {part} - TOP_LEVEL - {"__version__"}
    assert not wrong, f"{path.relative_to(PACKAGE)} ({part}/) imports {sorted(wrong)}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_copilot_package_imports_the_sdk(path: Path) -> None:
    sdk = {name for name in imported(path) if name == "copilot" or name.startswith("copilot.")}
    assert not sdk or part_of(path) == "copilot", f"{path.relative_to(PACKAGE)} imports the SDK: {sorted(sdk)}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_short(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path.relative_to(PACKAGE)} is over {MAX_MODULE_LINES} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.relative_to(PACKAGE)}: over {MAX_FUNCTION_LINES} lines: {long}"
