"""Moments typed by people (ISO 8601) and written back for them, one convention for every reader.

Outside the CLI because the bench scripts read event dates the same way the commands read
`--from`/`--to`: a date alone is midnight UTC, and a time must carry its zone."""

from __future__ import annotations

from datetime import date, datetime, timezone


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


def moment_text(moment: datetime) -> str:
    """ISO 8601 in UTC to the second with a Z, as the commands print the moments they were given."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
