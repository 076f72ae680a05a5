"""The picture of the stored series: per-entity sentiment curves with the alerts marked, as a PNG.

What `finsent plot` and `finsent demo` draw: choosing what to draw (window bounds left open, width,
entities) lives here; reading goes through storage.queries and drawing through pipeline.plotting.
The command line only turns its options into a PlotRequest.

A window taken from the stored data spans only the times news can carry (the worker's
FINSENT_EARLIEST_PUBLISHED_AT and FINSENT_MAX_FUTURE_SKEW): one article stored as dated 0001 or 9999,
before those checks or with them loosened, must not stretch the plot over millennia.

Without a width the width comes from the window: the finest stored width that draws at most
TARGET_PLOT_BUCKETS buckets, else a coarser multiple of the widest stored one, summed in SQL
(storage.queries.filled_series): six months of 5-minute buckets draw as about 1,500 3-hour ones,
in seconds and bounded memory, where a bar per 5-minute bucket took minutes and gigabytes. An explicit
width draws exactly that width and is capped at MAX_PLOT_BUCKETS buckets, which a 1200-pixel panel
cannot show apart anyway.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import Engine

from consumers.schema import TimeWindow
from pipeline.errors import UserError
from pipeline.tabular import width_label
from storage.queries import EPOCH, alerts_frame, entity_activity, filled_series, first_bucket

if TYPE_CHECKING:  # matplotlib (the plot extra) loads only when a picture is drawn
    from pipeline.plotting import EntityPanel

DEFAULT_TOP = 6
MAX_PLOT_BUCKETS = 20_000
"""Most buckets one plot draws at an explicit --width: 17 per pixel of a panel already."""
TARGET_PLOT_BUCKETS = 2_000
"""Most buckets a plot draws when it picks its width: under two per pixel of a panel, drawn in seconds."""
HOUR, DAY = 3600, 86_400
COARSER_WIDTHS = (2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY)
"""Widths summed on read when even the widest stored one draws too many buckets (those that are its
multiples); past the last, whole multiples of it."""


@dataclass(frozen=True)
class PlotRequest:
    """What to draw: None bounds fall back to the stored data's span; no entities means choose them;
    no width means pick one from the window among `stored_widths`."""

    width_seconds: int | None
    market_entity: str
    start: datetime | None = None
    end: datetime | None = None
    entities: tuple[str, ...] = ()
    top: int = DEFAULT_TOP
    news_times: TimeWindow = TimeWindow()
    """When news can be dated: an open bound of the window comes from the stored buckets inside it."""
    stored_widths: tuple[int, ...] = ()
    """FINSENT_BUCKET_WIDTHS: what a plot without width_seconds picks from (and sums from)."""


@dataclass(frozen=True)
class Resolution:
    """The drawn bucket width and the stored width its rows are read from (equal unless summed on read)."""

    width_seconds: int
    stored_width_seconds: int
    buckets: int

    def text(self) -> str:
        summed = (f", summed from the {width_label(self.stored_width_seconds)} buckets"
                  if self.width_seconds != self.stored_width_seconds else "")
        return f"drawn at {width_label(self.width_seconds)}: {self.buckets:,} buckets{summed}"


@dataclass(frozen=True)
class LeftOut:
    """Stored buckets outside the times news can carry, which a window from the stored data skipped."""

    buckets: int
    low: datetime
    high: datetime
    earliest: datetime | None
    latest: datetime | None
    width_seconds: int

    def note(self) -> str:
        where = [f"the earliest at {_minute(self.earliest)}" if self.earliest is not None else "",
                 f"the latest at {_minute(self.latest)}" if self.latest is not None else ""]
        return (f"note: left out {self.buckets} stored {width_label(self.width_seconds)} bucket{'s' if self.buckets != 1 else ''} "
                f"dated outside {_minute(self.low)} to {_minute(self.high)} ({', '.join(w for w in where if w)}): no news is "
                "dated there (see FINSENT_EARLIEST_PUBLISHED_AT, FINSENT_MAX_FUTURE_SKEW); --from and --to can still draw them")


@dataclass(frozen=True)
class PlotSummary:
    out: Path
    entities: tuple[str, ...]
    alerts: int
    start: datetime
    end: datetime
    resolution: Resolution
    left_out: LeftOut | None = None


def check_writable(out: Path, flag: str = "--out") -> None:
    """Fail before any work when the PNG cannot be written (the demo checks before its replay)."""
    folder = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise UserError(f"{flag} {out} is a directory; give a file name such as {out / 'finsent.png'}")
    if not folder.is_dir():
        raise UserError(f"cannot write {out}: the directory {folder} does not exist; create it or choose another {flag}")
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UserError(f"cannot write {out}: permission denied; choose another {flag}")


@dataclass(frozen=True)
class PlotFrames:
    """What the picture is drawn from (pipeline.plotting.build_figure's arguments), read from the database."""

    panels: Sequence[EntityPanel]
    alerts: pd.DataFrame
    start: datetime
    end: datetime
    resolution: Resolution
    left_out: LeftOut | None


def read_plot(engine: Engine, request: PlotRequest) -> PlotFrames:
    """Read the series and alerts for `request`; UserError when there is nothing to draw."""
    from pipeline.plotting import EntityPanel  # matplotlib loads only when a plot is drawn

    start, end, left_out, resolution = _resolved(engine, request)
    stored = resolution.stored_width_seconds
    activity = entity_activity(engine, stored, start, end)
    if activity.empty:
        raise UserError(f"no {width_label(stored)} buckets between {_minute(start)} and "
                        f"{_minute(end)}{_stored_span(engine, stored, *_news_span(request.news_times))}")
    alerts = alerts_frame(engine, since=start, last_bucket=True)
    alerts = alerts[alerts["bucket_start"] < pd.Timestamp(end)]
    entities = _chosen_entities(request, activity, alerts)
    panels = [EntityPanel(entity, filled_series(engine, entity, resolution.width_seconds, start, end,
                                                  stored_width_seconds=stored)) for entity in entities]
    return PlotFrames(panels, alerts[alerts["entity"].isin(entities)], start, end, resolution, left_out)


def write_plot(engine: Engine, request: PlotRequest, out: Path) -> PlotSummary:
    """Read the frames for `request` (read_plot) and write the PNG; UserError when there is nothing to draw."""
    from pipeline.plotting import render_png  # matplotlib loads only when a plot is drawn

    frames = read_plot(engine, request)
    try:
        render_png(frames.panels, frames.alerts, frames.resolution.width_seconds, frames.start, frames.end, out)
    except OSError as error:
        raise UserError(f"cannot write {out}: {error.strerror or error}; choose another file") from None
    return PlotSummary(out, tuple(panel.entity for panel in frames.panels), len(frames.alerts), frames.start,
                       frames.end, frames.resolution, frames.left_out)


def _resolved(engine: Engine, request: PlotRequest) -> tuple[datetime, datetime, LeftOut | None, Resolution]:
    """The window and the width to draw it at: the asked-for width (capped), else one picked from
    the window, which then widens to whole buckets when drawn coarser than it was measured."""
    if request.width_seconds is not None:
        start, end, left_out = _window(engine, request, request.width_seconds)
        _check_bucket_count(start, end, request.width_seconds)
        width = stored = request.width_seconds
    else:
        widths = _usable_widths(engine, request.stored_widths)
        start, end, left_out = _window(engine, request, widths[0])
        width, stored = pick_width(start, end, widths)
        if width != widths[0]:
            start, end = _whole_buckets(start, end, width)
    return start, end, left_out, Resolution(width, stored, _grid_buckets(start, end, width))


def pick_width(start: datetime, end: datetime, widths: Sequence[int]) -> tuple[int, int]:
    """(drawn width, stored width read): the finest of `widths` (stored, ascending) with at most
    TARGET_PLOT_BUCKETS buckets meeting [start, end); else the finest coarser multiple of the
    widest, summed from it."""
    for width in widths:
        if _meeting_buckets(start, end, width) <= TARGET_PLOT_BUCKETS:
            return width, width
    stored = widths[-1]
    multiples = [width for width in COARSER_WIDTHS if width > stored and width % stored == 0]
    for width in multiples:
        if _meeting_buckets(start, end, width) <= TARGET_PLOT_BUCKETS:
            return width, stored
    step = multiples[-1] if multiples else stored
    width = step * max(1, math.ceil((end - start).total_seconds() / (TARGET_PLOT_BUCKETS * step)))
    while _meeting_buckets(start, end, width) > TARGET_PLOT_BUCKETS:
        width += step
    return width, stored


def _usable_widths(engine: Engine, stored_widths: Sequence[int]) -> list[int]:
    """The stored widths, ascending, whose buckets reach back as far as the finest stored series'
    (a width added to FINSENT_BUCKET_WIDTHS later holds only recent news); all of them on an empty
    database, so that its errors name the finest width."""
    ordered = sorted(stored_widths)
    if not ordered:
        raise ValueError("a plot without a width needs the stored widths to pick from")
    with engine.connect() as connection:
        stored = {width: first_bucket(connection, width) for width in ordered}
    firsts = {width: first for width, first in stored.items() if first is not None}
    if not firsts:
        return ordered
    earliest = next(iter(firsts.values()))
    return [width for width, first in firsts.items() if first <= earliest]


def _meeting_buckets(start: datetime, end: datetime, width_seconds: int) -> int:
    """How many epoch-aligned buckets of the width meet [start, end) (its widened window's grid)."""
    low, high = _whole_buckets(start, end, width_seconds)
    return math.ceil((high - low).total_seconds() / width_seconds)


def _grid_buckets(start: datetime, end: datetime, width_seconds: int) -> int:
    """How many epoch-aligned buckets of the width start in [start, end): the grid a panel draws
    (storage.queries.filled_series)."""
    width = timedelta(seconds=width_seconds)
    first = EPOCH + -((EPOCH - start) // width) * width
    return max(0, math.ceil((end - first).total_seconds() / width_seconds))


def _whole_buckets(start: datetime, end: datetime, width_seconds: int) -> tuple[datetime, datetime]:
    """[start, end) widened to whole epoch-aligned buckets: a window drawn coarser than the width it
    was measured in keeps its partial first and last buckets (never past the calendar's ends)."""
    width = timedelta(seconds=width_seconds)
    try:
        low = EPOCH + ((start - EPOCH) // width) * width
    except OverflowError:
        low = start
    try:
        high = EPOCH - ((EPOCH - end) // width) * width
    except OverflowError:
        high = end
    return low, high


def _window(engine: Engine, request: PlotRequest, width_seconds: int) -> tuple[datetime, datetime, LeftOut | None]:
    """The requested window; open bounds become the first and last stored bucket of `width_seconds`
    that news can be dated in, and the buckets outside that span are reported as left out."""
    if request.start is not None and request.end is not None:
        return request.start, request.end, None
    low, high = _news_span(request.news_times)
    low = low if request.start is None else min(low, request.start)
    high = high if request.end is None else max(high, request.end)
    stored = entity_activity(engine, width_seconds, low, high)
    everything = entity_activity(engine, width_seconds)
    if everything.empty:
        raise UserError(f"no {width_label(width_seconds)} buckets in the database: run `finsent worker` "
                        "(or `finsent demo`) to score some news first")
    if stored.empty:
        first = everything["first_bucket_start"].min().to_pydatetime()
        last = _bucket_end(everything["last_bucket_start"].max().to_pydatetime(), width_seconds)
        raise UserError(f"no {width_label(width_seconds)} buckets between {_minute(low)} and {_minute(high)}, "
                        f"when news can be dated: the stored ones span {_minute(first)} to {_minute(last)}; "
                        "plot them with --from and --to")
    start = request.start or stored["first_bucket_start"].min().to_pydatetime()
    end = request.end or stored["last_bucket_start"].max().to_pydatetime() + timedelta(seconds=width_seconds)
    if end <= start:
        raise UserError(f"no {width_label(width_seconds)} buckets between {_minute(start)} and "
                        f"{_minute(end)}{_stored_span(engine, width_seconds, low, high)}")
    return start, end, _left_out(stored, everything, low, high, width_seconds)


def _news_span(times: TimeWindow) -> tuple[datetime, datetime]:
    """[low, high): when news can be dated, by the rule the worker applies to every message."""
    try:
        return times.earliest, times.clock() + times.max_future_skew
    except OverflowError:
        return times.earliest, datetime.max.replace(tzinfo=timezone.utc)


def _left_out(stored: pd.DataFrame, everything: pd.DataFrame, low: datetime, high: datetime,
              width_seconds: int) -> LeftOut | None:
    """What `everything` (all stored buckets) holds beyond `stored` (those in [low, high)), if anything."""
    buckets = int(everything["buckets"].sum() - stored["buckets"].sum())
    if buckets == 0:
        return None
    first = everything["first_bucket_start"].min().to_pydatetime()
    last = everything["last_bucket_start"].max().to_pydatetime()
    return LeftOut(buckets, low, high, first if first < low else None, last if last >= high else None, width_seconds)


def _check_bucket_count(start: datetime, end: datetime, width_seconds: int) -> None:
    buckets = math.ceil((end - start).total_seconds() / width_seconds)
    if buckets > MAX_PLOT_BUCKETS:
        raise UserError(
            f"{_minute(start)} to {_minute(end)} is {buckets:,} {width_label(width_seconds)} buckets, more than one plot "
            f"draws ({MAX_PLOT_BUCKETS:,}): choose a shorter window (--since, --from/--to), a wider --width, "
            "or no --width to draw at a width picked from the window"
        )


def _chosen_entities(request: PlotRequest, activity: pd.DataFrame, alerts: pd.DataFrame) -> list[str]:
    """The asked-for entities (each must have data), else alerted entities first, then the most active."""
    active = list(activity["entity"])
    if request.entities:
        missing = [entity for entity in request.entities if entity not in active]
        if missing:
            raise UserError(f"no buckets for {', '.join(missing)} in the window; entities with data there: "
                            f"{', '.join(active[:12])}{' ...' if len(active) > 12 else ''}")
        return list(request.entities)
    candidates = [entity for entity in active if entity != request.market_entity]
    if not candidates:
        return [request.market_entity]
    alerted = alerts[alerts["entity"].isin(candidates)]["entity"].value_counts()
    order = sorted(candidates, key=lambda entity: (-int(alerted.get(entity, 0)), active.index(entity)))
    return order[: request.top]


def _stored_span(engine: Engine, width_seconds: int, low: datetime, high: datetime) -> str:
    """Where the stored buckets dated when news can be lie, as a hint after 'nothing in this window'."""
    stored = entity_activity(engine, width_seconds, low, high)
    if stored.empty:
        return "; the database holds none: score some news first (`finsent worker` or `finsent demo`)"
    first = stored["first_bucket_start"].min().to_pydatetime()
    last = stored["last_bucket_start"].max().to_pydatetime()
    return (f"; the stored data spans {_minute(first)} to {_minute(_bucket_end(last, width_seconds))} "
            "(omit --since/--from/--to to plot all of it)")


def _bucket_end(start: datetime, width_seconds: int) -> datetime:
    try:
        return start + timedelta(seconds=width_seconds)
    except OverflowError:
        return datetime.max.replace(tzinfo=timezone.utc)


def _minute(moment: datetime | pd.Timestamp) -> str:
    """ISO 8601 to the minute in UTC, four-digit years included (strftime writes year 1 as '1')."""
    moment = moment.to_pydatetime() if isinstance(moment, pd.Timestamp) else moment
    return moment.astimezone(timezone.utc).isoformat(timespec="minutes").replace("+00:00", "Z")
