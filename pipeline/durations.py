"""Durations as users write them (`30s`, `5m`, `1h`, `1d`; `500ms` for the *_MS settings) and back.

A leaf module: the settings parse with it, the tables and plots label bucket widths with it, so
what `finsent config` prints and what a listing shows read alike and parse back to the same value.
"""

from __future__ import annotations

import re

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_duration_seconds(text: str) -> int:
    """'5m' -> 300. Raises ValueError with the expected form."""
    match = _DURATION_PATTERN.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError("expected a positive duration such as 30s, 5m, 1h or 1d")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


_MILLISECOND_PATTERN = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")


def parse_milliseconds(text: str) -> int:
    """'500ms', '10s' or '5m' -> milliseconds; a bare number counts as milliseconds (the *_MS names)."""
    match = _MILLISECOND_PATTERN.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError("expected a positive duration such as 500ms, 10s or 1m (a bare number is milliseconds)")
    unit = match.group(2) or "ms"
    return int(match.group(1)) * (1 if unit == "ms" else 1000 * _DURATION_UNITS[unit])


def duration_text(seconds: int) -> str:
    """300 -> '5m': the largest unit that divides it, as a user would type it."""
    for unit, size in sorted(_DURATION_UNITS.items(), key=lambda item: -item[1]):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def milliseconds_text(milliseconds: int) -> str:
    return duration_text(milliseconds // 1000) if milliseconds % 1000 == 0 else f"{milliseconds}ms"
