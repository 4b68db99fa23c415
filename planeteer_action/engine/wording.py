"""Durations as people write them on a command line or in a workflow: `90`, `90s`, `10m`, `2h`, `7d`."""

from __future__ import annotations

import re

from planeteer_action.errors import ConfigError

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str, what: str) -> float:
    match = _DURATION.match(str(text).lower())
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{what} {text!r} is not a duration: write seconds or e.g. 90s, 10m, 2h, 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]
