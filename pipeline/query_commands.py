"""The query side of the `finsent` command line: scores, entities and articles on the configured database.

Windows (`--since`) count back from the newest stored article's event time, capped at the wall
clock: the watermark detection uses. On a live stream that is now; on a replayed or demo database
it is the end of its news, so `--since 6h` shows the last six hours of news rather than six empty
hours of wall-clock time. `--from`/`--to` give the window outright. Every value is checked before
the database is opened, and a mistake is one `finsent: error:` line naming the value and the fix.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from pipeline.cli_values import moment_option, stored_width
from pipeline.config import Settings, parse_duration_seconds
from pipeline.database import open_migrated_database
from pipeline.errors import UserError
from pipeline.tabular import FORMATS, emit_frame, width_label

SORTS = ("active", "negative")
TABLE_HEADLINE_CHARS = 80
_SCORE_MEASURES = ["mean_p_negative", "mean_p_neutral", "mean_p_positive", "negative_share", "mean_sentiment", "emotion_index"]
_NEWEST = timedelta(microseconds=1)
"""A window that ends at the newest article ends just after it: windows are [start, end)."""


def add_query_commands(commands: Any) -> None:
    scores = commands.add_parser("scores", help="per-bucket sentiment series of one entity, empty buckets included")
    scores.add_argument("--entity", required=True, help="ticker or entity, e.g. AAPL (`finsent entities` lists them)")
    scores.add_argument("--width", help="bucket width, one of FINSENT_BUCKET_WIDTHS (default: the smallest)")
    _add_window_arguments(scores, "6h")
    scores.add_argument("--format", choices=FORMATS, default="table")
    scores.set_defaults(handler=show_scores)

    entities = commands.add_parser("entities", help="most active or most negative entities in a window")
    _add_window_arguments(entities, "24h")
    entities.add_argument("--sort", choices=SORTS, default="active",
                          help="active: most articles first; negative: lowest mean sentiment first (default active)")
    entities.add_argument("--limit", metavar="N", default="20", help="at most this many entities (default 20)")
    entities.add_argument("--format", choices=FORMATS, default="table")
    entities.set_defaults(handler=show_entities)

    articles = commands.add_parser("articles", help="articles about one entity with their scores, newest first")
    articles.add_argument("--entity", required=True, help="ticker or entity, e.g. AAPL")
    _add_window_arguments(articles, "1h")
    articles.add_argument("--limit", metavar="N", default="50", help="at most this many articles (default 50)")
    articles.add_argument("--format", choices=FORMATS, default="table")
    articles.set_defaults(handler=show_articles)


def _add_window_arguments(parser: argparse.ArgumentParser, default_since: str) -> None:
    parser.add_argument("--since", metavar="DURATION", help=f"how far back from --to, e.g. 30m, 6h, 7d (default {default_since})")
    parser.add_argument("--from", dest="start", metavar="TIME", help="window start, ISO 8601 (2026-03-02 or 2026-03-02T09:00Z); instead of --since")
    parser.add_argument("--to", dest="end", metavar="TIME", help="window end, exclusive (default: just after the newest article)")
    parser.set_defaults(default_since=default_since)


@dataclass(frozen=True)
class WindowRequest:
    """The window as typed, checked but not yet anchored (anchoring needs the database)."""

    since_seconds: int
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    """Exclusive."""
    anchor: str
    """How the end was chosen, for the summary line."""

    def describe(self) -> str:
        return f"{_iso(self.start)} to {_iso(self.end)} ({self.anchor})"


def show_scores(settings: Settings, arguments: argparse.Namespace) -> int:
    from storage.queries import TIMESTEP_COLUMNS, timestep_series

    width = _width(arguments.width, settings)
    request = _window_request(arguments)
    database = open_migrated_database(settings)
    try:
        entity = _known_entity(database.engine, arguments.entity, settings)
        window = _anchor(database.engine, request)
        frame = timestep_series(database.engine, entity, width, window.start, window.end)
    finally:
        database.close()
    with_articles = int((frame["article_count"] > 0).sum())
    print(f"{entity}: {len(frame)} buckets of {width_label(width)} ({with_articles} with articles), "
          f"{window.describe()}", file=sys.stderr)
    if arguments.format == "table":
        frame = frame[[c for c in TIMESTEP_COLUMNS if c != "model_version"]].round({c: 3 for c in _SCORE_MEASURES})
    emit_frame(frame, arguments.format, empty="no buckets in the window")
    return 0


def show_entities(settings: Settings, arguments: argparse.Namespace) -> int:
    from storage.queries import entity_summary

    request = _window_request(arguments)
    limit = _limit(arguments.limit)
    database = open_migrated_database(settings)
    try:
        window = _anchor(database.engine, request)
        frame = entity_summary(database.engine, window.start, window.end)
    finally:
        database.close()
    print(f"{len(frame)} entities with articles, {window.describe()}; "
          f"{'most articles' if arguments.sort == 'active' else 'lowest mean sentiment'} first", file=sys.stderr)
    frame = sort_entities(frame, arguments.sort).head(limit)
    if arguments.format == "table":
        frame = frame.round({"mean_sentiment": 3, "negative_share": 3})
    emit_frame(frame, arguments.format, empty="no entities with articles in the window: widen --since")
    return 0


def sort_entities(frame: pd.DataFrame, sort: str) -> pd.DataFrame:
    """active: most articles first; negative: lowest mean sentiment first, then the larger negative
    share and the more articles. Unscored entities go last; ties fall back to the entity name."""
    if sort == "active":
        keys, ascending = ["articles", "mean_sentiment", "entity"], [False, True, True]
    else:
        keys, ascending = ["mean_sentiment", "negative_share", "articles", "entity"], [True, False, False, True]
    return frame.sort_values(keys, ascending=ascending, na_position="last", kind="stable").reset_index(drop=True)


def show_articles(settings: Settings, arguments: argparse.Namespace) -> int:
    from storage.queries import articles_for_entity

    request = _window_request(arguments)
    limit = _limit(arguments.limit)
    database = open_migrated_database(settings)
    try:
        entity = _known_entity(database.engine, arguments.entity, settings)
        window = _anchor(database.engine, request)
        frame = articles_for_entity(database.engine, entity, window.start, window.end, newest_first=True, limit=limit)
    finally:
        database.close()
    more = f" (the newest {limit}; raise --limit for more)" if len(frame) == limit else ""
    print(f"{entity}: {len(frame)} articles{more}, {window.describe()}", file=sys.stderr)
    if arguments.format == "table" and not frame.empty:
        headlines = frame["headline"].map(_shorten)
        frame = frame.assign(headline=headlines.str.ljust(int(headlines.str.len().max())))[
            ["published_at", "label", "sentiment", "p_negative", "p_neutral", "p_positive", "risk_tags", "source", "id",
             "headline"]
        ].round({"sentiment": 3, "p_negative": 3, "p_neutral": 3, "p_positive": 3})
    emit_frame(frame, arguments.format, empty=f"no articles about {entity} in the window: widen --since")
    return 0


def _width(text: str | None, settings: Settings) -> int:
    """--width, or the smallest stored width; only stored widths have a series to show."""
    return settings.bucket_widths[0] if text is None else stored_width(text, settings.bucket_widths)


def _window_request(arguments: argparse.Namespace) -> WindowRequest:
    if arguments.since is not None and arguments.start is not None:
        raise UserError(f"--since {arguments.since} and --from {arguments.start} both set the start: give one of them")
    since_text = arguments.since or arguments.default_since
    try:
        since = parse_duration_seconds(since_text)
    except ValueError:
        raise UserError(f"--since {since_text!r} is not a duration: use a positive one such as 30m, 6h or 7d") from None
    start = moment_option("--from", arguments.start)
    end = moment_option("--to", arguments.end)
    if start is not None and end is not None and start >= end:
        raise UserError(f"--from {_iso(start)} is not before --to {_iso(end)}: swap them")
    return WindowRequest(since, start, end)


def _anchor(engine: Engine, request: WindowRequest) -> Window:
    """Fix the window's end (--to, else just after the newest article, never past now) and start."""
    from storage.queries import data_clock

    if request.end is not None:
        end, anchor = request.end, "--to"
    else:
        with engine.connect() as connection:
            present, is_now = data_clock(connection)
        end, anchor = (present, "up to now") if is_now else (present + _NEWEST, "ending at the newest article")
    if request.start is None:
        return Window(end - timedelta(seconds=request.since_seconds), end, anchor)
    if request.start >= end:
        raise UserError(f"--from {_iso(request.start)} is not before the window's end {_iso(end)} ({anchor}): "
                        "give an earlier --from or a later --to")
    return Window(request.start, end, anchor)


def _known_entity(engine: Engine, text: str, settings: Settings) -> str:
    """The entity as stored (tickers are upper case); an entity with no article at all is a typo
    more often than not, so it is an error rather than an empty answer."""
    from storage.queries import entity_last_published

    entity = text.strip().upper()
    if entity == settings.market_entity.upper():
        entity = settings.market_entity
    if entity_last_published(engine, entity) is None:
        raise UserError(f"no articles about {entity!r} in the database: check the name; "
                        "`finsent entities --since 7d` lists the entities with articles")
    return entity


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise UserError(f"--limit {text!r} is not a positive whole number: e.g. --limit 20")
    return value


def _shorten(headline: str) -> str:
    """Headlines last and left-aligned in a table, cut to a screen's width; json and csv keep them whole."""
    return headline if len(headline) <= TABLE_HEADLINE_CHARS else headline[: TABLE_HEADLINE_CHARS - 1] + "…"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
