"""Values typed on the command line that several commands share: moments in ISO 8601 and counts.

Moments are parsed apart from argparse so that a command can report a bad value as one
`finsent: error:` line (UserError) instead of argparse's usage block."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from datetime import date, datetime, timezone
from typing import TypeVar

from pipeline.config import parse_duration_seconds
from pipeline.errors import UserError
from pipeline.tabular import width_label

Number = TypeVar("Number", int, float)


def parse_moment(text: str) -> datetime:
    """'2026-03-02' -> midnight UTC; '2026-03-02T15:30Z' -> that instant in UTC. A time without a
    zone is refused rather than guessed. Raises ValueError naming the value and the expected form."""
    stripped = text.strip()
    try:
        if len(stripped) == 10:
            day = date.fromisoformat(stripped)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date or time; use ISO 8601 such as 2026-03-02 or 2026-03-02T15:30Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z for UTC (e.g. {text}Z)")
    return moment.astimezone(timezone.utc)


def moment_option(option: str, text: str | None) -> datetime | None:
    """An optional --from/--to value; a malformed one is a UserError naming the option."""
    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError as error:
        raise UserError(f"{option} {error}") from None


def positive_int(text: str) -> int:
    """argparse type for counts such as --top or --partitions."""
    return _positive(text, int, "a whole number")


def positive_float(text: str) -> float:
    """argparse type for rates and factors such as --speedup or --lr."""
    return _positive(text, float, "a number")


def fraction(text: str) -> float:
    """argparse type for a share strictly between 0 and 1, such as --validation-fraction."""
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def _positive(text: str, kind: Callable[[str], Number], noun: str) -> Number:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def stored_width(text: str, stored: Sequence[int]) -> int:
    """--width as seconds; only the widths the worker keeps (FINSENT_BUCKET_WIDTHS) have a series."""
    choices = ", ".join(width_label(width) for width in stored)
    try:
        width = parse_duration_seconds(text)
    except ValueError:
        raise UserError(f"--width {text!r} is not a duration: choose one of {choices} (FINSENT_BUCKET_WIDTHS)") from None
    if width not in stored:
        raise UserError(f"--width {text} is not a stored bucket width: choose one of {choices} (FINSENT_BUCKET_WIDTHS)")
    return width
