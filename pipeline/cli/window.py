"""The one time window of every command: `--since`, `--from`, `--to`.

- `--since D` counts back D from the window's end; the end is `--to` if given, else the data clock:
  just after the newest stored article, never past now (storage.queries.data_clock). On a live
  stream that is now; on a replayed or demo database it is the end of its news, so `--since 6h`
  shows the last six hours of news rather than six empty hours of wall-clock time. A counted-back
  start never reaches before FINSENT_EARLIEST_PUBLISHED_AT (no news is dated earlier), nor past the
  calendar's first day.
- `--from T` / `--to T` are ISO 8601 moments (a date is midnight UTC, a time needs a zone); `--to`
  is exclusive and must be after `--from`; `--since` and `--from` both set the start, so only one
  may be given.
- A command's default `--since` applies when neither `--since` nor `--from` is given. Commands
  without one (alerts, plot) leave a bound open when nothing sets it: the whole stored span.

Options are checked before the database is opened (`window_request`); `resolve_window` then fixes
the bounds, reading the data clock at most once. Every mistake is a UserError naming the value and
the fix.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine

from pipeline.cli.values import duration_option, moment_option
from pipeline.errors import UserError
from pipeline.moments import moment_text

JUST_AFTER = timedelta(microseconds=1)
"""A window that ends at the newest article ends just after it: windows are [start, end)."""
CALENDAR_START = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class WindowRequest:
    """The window as typed: checked, not yet anchored (anchoring needs the database)."""

    since_seconds: int | None = None
    """--since, or the command's default when neither --since nor --from is given."""
    start: datetime | None = None
    end: datetime | None = None

    @property
    def needs_clock(self) -> bool:
        """Whether the end comes from the stored data: a start is set but no --to."""
        return self.end is None and (self.since_seconds is not None or self.start is not None)


@dataclass(frozen=True)
class Window:
    """[start, end); None is an open bound: the command's whole stored span on that side."""

    start: datetime | None
    end: datetime | None
    anchor: str
    """How the end was chosen, for the summary line."""

    def bounds(self) -> tuple[datetime, datetime]:
        """Both bounds, for commands whose window always has them (a default --since)."""
        if self.start is None or self.end is None:
            raise ValueError(f"the window {self.describe()} is open; give the command a default --since")
        return self.start, self.end

    def describe(self) -> str:
        start = "the first stored data" if self.start is None else moment_text(self.start)
        end = "the last stored data" if self.end is None else moment_text(self.end)
        return f"{start} to {end} ({self.anchor})"


def add_window_arguments(parser: argparse.ArgumentParser, default_since: str | None = None, *,
                         since: bool = True, required: bool = False) -> None:
    """--since/--from/--to on `parser`, parsed later by `window_request` (so that a bad value is one
    `finsent: error:` line naming the fix, whatever the option)."""
    if since:
        fallback = f"default {default_since}" if default_since else "default: all stored data"
        parser.add_argument("--since", metavar="DURATION",
                            help=f"the last span of news before --to or the newest article, e.g. 30m, 6h, 7d ({fallback})")
    parser.add_argument("--from", dest="start", metavar="TIME", required=required,
                        help="window start, ISO 8601 (2026-03-02 or 2026-03-02T09:00Z)" + ("; instead of --since" if since else ""))
    parser.add_argument("--to", dest="end", metavar="TIME", required=required,
                        help="window end, exclusive, ISO 8601" + ("" if required else " (default: just after the newest article)"))
    parser.set_defaults(default_since=default_since if since else None)


def window_request(arguments: argparse.Namespace) -> WindowRequest:
    """The options of `add_window_arguments`, checked; UserError on the first mistake."""
    since_text = getattr(arguments, "since", None)
    if since_text is not None and arguments.start is not None:
        raise UserError(f"--since {since_text} and --from {arguments.start} both set the start: give one of them")
    start = moment_option("--from", arguments.start)
    end = moment_option("--to", arguments.end)
    if start is not None and end is not None and start >= end:
        raise UserError(f"--to {moment_text(end)} must be after --from {moment_text(start)}: swap them")
    if since_text is None and start is None:
        since_text = arguments.default_since
    return WindowRequest(None if since_text is None else duration_option("--since", since_text), start, end)


def resolve_window(engine: Engine, request: WindowRequest, earliest: datetime) -> Window:
    """Fix the bounds: the end is --to, else the data clock (read once, only when needed); the
    start is --from, else counted back from the end, no earlier than `earliest`
    (FINSENT_EARLIEST_PUBLISHED_AT)."""
    end, anchor = request.end, "--to" if request.end is not None else "all stored data"
    if request.needs_clock:
        end, anchor = _data_clock_end(engine)
    if request.start is not None:
        start: datetime | None = request.start
        if end is not None and request.start >= end:
            raise UserError(f"--from {moment_text(request.start)} is not before the window's end {moment_text(end)} "
                            f"({anchor}): give an earlier --from or a later --to")
    elif request.since_seconds is not None and end is not None:
        start = counted_back(end, request.since_seconds, earliest)
    else:
        start = None
    return Window(start, end, anchor)


def counted_back(end: datetime, seconds: int, earliest: datetime) -> datetime:
    """`seconds` before `end`, no earlier than `earliest` (when that is before `end`) nor the calendar's start."""
    try:
        start = end - timedelta(seconds=seconds)
    except OverflowError:
        start = CALENDAR_START
    return max(start, earliest) if earliest < end else start


def _data_clock_end(engine: Engine) -> tuple[datetime, str]:
    from storage.queries import data_clock

    with engine.connect() as connection:
        present, is_now = data_clock(connection)
    return (present, "up to now") if is_now else (present + JUST_AFTER, "ending at the newest article")
