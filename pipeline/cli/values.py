"""Option values that several commands share and that must mean the same in each: entity names,
bucket widths, durations and moments. Each refusal is a UserError naming the option, the value and
the fix, which main() prints as one `finsent: error:` line."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pipeline.durations import parse_duration_seconds
from pipeline.errors import UserError
from pipeline.moments import parse_moment
from pipeline.tabular import width_label


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


def duration_option(option: str, text: str) -> int:
    """A duration option value (--since, --for) in seconds."""
    try:
        return parse_duration_seconds(text)
    except ValueError:
        raise UserError(f"{option} {text!r} is not a duration: use a positive one such as 30m, 6h or 7d") from None


def moment_option(option: str, text: str | None) -> datetime | None:
    """An optional ISO 8601 option value (--from, --to, --evaluate-from)."""
    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError as error:
        raise UserError(f"{option} {error}") from None
