"""Plan JSON text as the TypeScript Planeteer reads and writes it: `JSON.parse`, `JSON.stringify(x, null, 2)`.

Numbers keep their JavaScript spelling, so an unchanged plan is saved byte for byte. What JavaScript could
not keep (a number beyond a double's range, which it reads as Infinity and writes as null) or this
program could not write back (nesting deeper than the writer's limit) is refused at reading, with one
line, rather than failing or silently changing the file later.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

from planeteer_action.errors import PlanInvalid

# orjson writes arrays and objects nested this deep at most; a real plan is about six deep.
MAX_NESTING = 254


class JsFloat(float):
    """A number read from the file; written back the way JavaScript spells it (1.5e-7, not 1.5e-07)."""


def parse_json(text: str, where: str) -> Any:
    """`json.loads` with JavaScript's numbers; every problem is one PlanInvalid line starting with `where`."""
    try:
        data = json.loads(text, parse_float=_parse_float, parse_int=_parse_int, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise PlanInvalid(
            f"{where}:{exc.lineno}:{exc.colno}: malformed JSON ({exc.msg}): fix the syntax there"
        ) from None
    except _NotJavaScript as exc:
        raise PlanInvalid(f"{where}{_position(text, exc.literal)}: {exc.problem}") from None
    except RecursionError:
        raise PlanInvalid(_too_deep(where)) from None
    try:
        dumps(data)  # what cannot be written back is refused now, not when the first save fails mid-run
    except orjson.JSONEncodeError as exc:
        if "recursion" in str(exc).lower():
            raise PlanInvalid(_too_deep(where)) from None
        raise PlanInvalid(f"{where}: cannot be saved again as it is ({exc}): fix that value") from None
    return data


def dumps(value: Any) -> bytes:
    """`JSON.stringify(value, null, 2)` for what `parse_json` returned (and plain Python values)."""
    return orjson.dumps(value, default=_as_fragment, option=orjson.OPT_INDENT_2)


def _too_deep(where: str) -> str:
    return f"{where}: arrays or objects nested more than {MAX_NESTING} levels deep: flatten that value"


class _NotJavaScript(ValueError):
    """A value JSON.parse would refuse or could not keep."""

    def __init__(self, literal: str, problem: str) -> None:
        super().__init__(problem)
        self.literal = literal
        self.problem = problem


def _parse_float(text: str) -> JsFloat:
    value = JsFloat(text)
    if value in (float("inf"), float("-inf")):
        raise _NotJavaScript(
            text,
            f"number too large ({len(text)} characters; JavaScript reads it as Infinity): "
            "write it as a string or a smaller number",
        )
    return value


def _refuse_constant(name: str) -> None:
    raise _NotJavaScript(name, f"{name} is not JSON (JSON.parse refuses it): write null or a number")


def _parse_int(text: str) -> int | float:
    # JSON.stringify wrote integers past 64 bits from a double; orjson cannot hold them as ints. A literal
    # longer than any 64-bit integer never reaches int(), which refuses more than 4,300 digits.
    if len(text.lstrip("-")) <= 19:
        value = int(text)
        if -(2**63) <= value < 2**63:
            return value
    return _parse_float(text)


def _position(text: str, literal: str) -> str:
    """`:line:column` of the number's first appearance as a JSON value (the parser does not say where)."""
    match = re.search(rf"(?<![\w.\"-]){re.escape(literal)}(?![\w.])", text)
    if match is None:
        return ""
    line = text.count("\n", 0, match.start()) + 1
    return f":{line}:{match.start() - text.rfind(chr(10), 0, match.start())}"


def _as_fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, JsFloat):
        return orjson.Fragment(_js_number(value).encode())
    raise TypeError(f"cannot write {type(value).__name__} into a plan")


def _js_number(value: float) -> str:
    """ECMAScript Number::toString for a finite float (all `parse_json` gives), from the shortest digits."""
    if value == 0:
        return "0"
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k, n = len(digits), int(exponent) + len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    return ("-" if value < 0 else "") + text
