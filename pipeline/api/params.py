"""Query and path values every route reads alike: pages, windows, entity names and bucket widths.

Each refusal is a 422 whose detail names the parameter, the value and what is accepted. Windows
follow the CLI's rules (pipeline/cli/window.py): times are ISO 8601 (a date is midnight UTC, a
time needs its zone), `until` is exclusive, and a missing end is the data's end (just after the
newest article, never past now), so a replayed database answers with its news, not with empty
wall-clock hours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import Engine

from pipeline.api.errors import unprocessable
from pipeline.api.schemas import NAME_PATTERN
from pipeline.durations import duration_text, parse_duration_seconds
from pipeline.moments import moment_text, parse_moment

MAX_LIMIT = 500
MAX_OFFSET = 1_000_000_000
JUST_AFTER = timedelta(microseconds=1)
"""A window that ends at the newest article ends just after it: windows are [start, end)."""
CALENDAR_START = datetime.min.replace(tzinfo=timezone.utc)
_TIME_HELP = "ISO 8601: a date (2026-03-02, midnight UTC) or a time with its zone (2026-03-02T09:00:00Z)"

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"items per page, 1 to {MAX_LIMIT}")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip, from the first")]
Since = Annotated[str | None, Query(max_length=64, description=f"window start, inclusive; {_TIME_HELP}",
                                    examples=["2026-03-02T00:00:00Z"])]
Until = Annotated[str | None, Query(max_length=64, description=f"window end, exclusive; {_TIME_HELP}",
                                    examples=["2026-03-03"])]
EntityInPath = Annotated[str, Path(min_length=1, max_length=256, pattern=NAME_PATTERN, examples=["AAPL"],
                                   description="ticker or entity, e.g. AAPL (case does not matter)")]
EntityFilter = Annotated[str | None, Query(min_length=1, max_length=256, pattern=NAME_PATTERN,
                                           description="only this entity, e.g. AAPL")]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int


def paging(limit: Limit = 50, offset: Offset = 0) -> Paging:
    """The dependency of every list: `?limit=` (1..500, default 50) and `?offset=` (0 or more)."""
    return Paging(limit, offset)


@dataclass(frozen=True)
class WindowRequest:
    """`since`/`until` as given, checked; a None bound is filled in by `anchored` or left open."""

    start: datetime | None
    end: datetime | None


def window_request(since: str | None, until: str | None) -> WindowRequest:
    start, end = moment_value("since", since), moment_value("until", until)
    if start is not None and end is not None and start >= end:
        unprocessable(f"query parameter until={moment_text(end)} must be after since={moment_text(start)}: swap them")
    return WindowRequest(start, end)


def moment_value(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError as error:
        unprocessable(f"query parameter {name}: {error}")
    except OverflowError:
        unprocessable(f"query parameter {name}={text[:64]!r} is outside the years 1 to 9999 in UTC: give a later or earlier time")


def anchored(request: WindowRequest, default_end: Callable[[], datetime], span: timedelta) -> tuple[datetime, datetime]:
    """Both bounds: the end is `until`, else `default_end()` (read only then); the start is `since`,
    else `span` before the end. A `since` after the data's end is an empty window, not an error."""
    end = request.end if request.end is not None else default_end()
    start = request.start if request.start is not None else counted_back(end, span)
    return (start, max(start, end))


def counted_back(end: datetime, span: timedelta) -> datetime:
    try:
        return end - span
    except OverflowError:
        return CALENDAR_START


def data_end(engine: Engine) -> datetime:
    """Just after the newest stored article, or now if the news reaches now (a live stream)."""
    from storage.queries import data_clock

    with engine.connect() as connection:
        present, is_now = data_clock(connection)
    return present if is_now else present + JUST_AFTER


def width_seconds(text: str | None, stored: tuple[int, ...]) -> int:
    """`?width=` in seconds, one of FINSENT_BUCKET_WIDTHS (default: the smallest)."""
    if text is None:
        return stored[0]
    choices = ", ".join(duration_text(width) for width in stored)
    try:
        width = parse_duration_seconds(text)
    except ValueError:
        unprocessable(f"query parameter width={text[:32]!r} is not a duration: choose one of {choices} (FINSENT_BUCKET_WIDTHS)")
    if width not in stored:
        unprocessable(f"query parameter width={text} is not a stored bucket width: choose one of {choices} (FINSENT_BUCKET_WIDTHS)")
    return width


def known_query_only(request: Request) -> None:
    """Refuse a query parameter the route does not take (`?limt=5` would otherwise be ignored in
    silence), and one given twice (every parameter takes one value: all but the last would be)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    accepted = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - accepted)
    if unknown:
        takes = ", ".join(sorted(accepted)) or "none"
        unprocessable(f"query parameter {unknown[0][:32]!r} is not accepted by {request.url.path}: it takes {takes}")
    repeated = sorted(name for name in set(request.query_params) if len(request.query_params.getlist(name)) > 1)
    if repeated:
        unprocessable(f"query parameter {repeated[0][:32]!r} is given more than once: it takes one value, send it once")


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names
