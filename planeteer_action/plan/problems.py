"""A plan that does not match the model, described as one line: where (by task id), what, and the fix."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def kind_of(value: Any) -> str:
    """What a JSON value is, in the words a plan's author would use."""
    kinds = ((bool, "a boolean"), (int | float, "a number"), (str, "a string"), (list, "an array"), (dict, "an object"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def describe_validation_error(exc: ValidationError, data: dict[str, Any]) -> str:
    """The first validation error as one line: where (by task id when there is one), what, how to fix."""
    error = exc.errors()[0]
    loc = list(error["loc"])
    where = _location(loc, data)
    kind = error["type"]
    if kind == "missing":
        return f"{where}: required field is missing: add it"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{where}: {error['input']!r} is not allowed: use one of {expected}"
    expected = {
        "string_type": "a string",
        "list_type": "an array",
        "int_type": "an integer",
        "dict_type": "an object",
        "model_type": "an object",
        "bool_type": "true or false",
    }.get(kind)
    got = kind_of(error.get("input"))
    if expected:
        return f"{where}: expected {expected}, got {got}: fix its type"
    return f"{where}: {error['msg']}"


def _location(loc: list[Any], data: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = data
    for i, part in enumerate(loc):
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node) and isinstance(node[part], dict):
                task_id = node[part].get("id")
                if loc[i - 1 : i] == ["tasks"] and isinstance(task_id, str):
                    label = f"[{part}] (task {task_id!r})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(part))
        node = node[part] if isinstance(node, dict | list) and _has(node, part) else None
    return "".join(parts) or "plan"


def _has(node: dict[str, Any] | list[Any], key: Any) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(key, int) and 0 <= key < len(node)
