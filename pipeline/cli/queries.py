"""`finsent series`, `entities` and `articles`: the stored series, entities and articles as a table,
JSON or CSV on stdout, with the window used on stderr. Every value is checked before the database is
opened (windows: pipeline.cli.window)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from pipeline.cli.database import opened_database
from pipeline.cli.values import stored_width
from pipeline.cli.window import add_window_arguments, resolve_window, window_request
from pipeline.config import Settings
from pipeline.entities import entity_name
from pipeline.errors import UserError
from pipeline.tabular import FORMATS, emit_frame, width_label

SORTS = ("active", "negative")
TABLE_HEADLINE_CHARS = 80
_SCORE_MEASURES = ["mean_p_negative", "mean_p_neutral", "mean_p_positive", "negative_share", "mean_sentiment", "emotion_index"]


def add_query_commands(commands: Any) -> None:
    # `scores` was its name before the vocabulary settled on series and buckets; it stays an alias.
    series = commands.add_parser("series", aliases=["scores"],
                                 description="per-bucket sentiment series of one entity, empty buckets included")
    series.add_argument("--entity", required=True, help="ticker or entity, e.g. AAPL (`finsent entities` lists them)")
    series.add_argument("--width", help="bucket width, one of FINSENT_BUCKET_WIDTHS (default: the smallest)")
    add_window_arguments(series, "6h")
    series.add_argument("--format", choices=FORMATS, default="table")
    series.set_defaults(handler=show_series, command="series")

    entities = commands.add_parser("entities", description="most active or most negative entities in a window")
    add_window_arguments(entities, "24h")
    entities.add_argument("--sort", choices=SORTS, default="active",
                          help="active: most articles first; negative: lowest mean sentiment first (default active)")
    entities.add_argument("--limit", metavar="N", default="20", help="at most this many entities (default 20)")
    entities.add_argument("--format", choices=FORMATS, default="table")
    entities.set_defaults(handler=show_entities)

    articles = commands.add_parser("articles", description="articles about one entity with their scores, newest first")
    articles.add_argument("--entity", required=True, help="ticker or entity, e.g. AAPL")
    add_window_arguments(articles, "1h")
    articles.add_argument("--limit", metavar="N", default="50", help="at most this many articles (default 50)")
    articles.add_argument("--format", choices=FORMATS, default="table")
    articles.set_defaults(handler=show_articles)


def show_series(settings: Settings, arguments: argparse.Namespace) -> int:
    from storage.queries import BUCKET_COLUMNS, filled_series

    width = settings.bucket_widths[0] if arguments.width is None else stored_width(arguments.width, settings.bucket_widths)
    request = window_request(arguments)
    with opened_database(settings) as engine:
        entity = _known_entity(engine, arguments.entity, settings)
        window = resolve_window(engine, request, settings.time_window.earliest)
        frame = filled_series(engine, entity, width, *window.bounds())
    with_articles = int((frame["article_count"] > 0).sum())
    print(f"{entity}: {len(frame)} buckets of {width_label(width)} ({with_articles} with articles), "
          f"{window.describe()}", file=sys.stderr)
    if arguments.format == "table":
        frame = frame[[c for c in BUCKET_COLUMNS if c != "model_version"]].round({c: 3 for c in _SCORE_MEASURES})
    emit_frame(frame, arguments.format, empty="no buckets in the window")
    return 0


def show_entities(settings: Settings, arguments: argparse.Namespace) -> int:
    from storage.queries import entity_summary

    request = window_request(arguments)
    limit = _limit(arguments.limit)
    with opened_database(settings) as engine:
        window = resolve_window(engine, request, settings.time_window.earliest)
        frame = entity_summary(engine, *window.bounds())
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

    request = window_request(arguments)
    limit = _limit(arguments.limit)
    with opened_database(settings) as engine:
        entity = _known_entity(engine, arguments.entity, settings)
        window = resolve_window(engine, request, settings.time_window.earliest)
        frame = articles_for_entity(engine, entity, *window.bounds(), newest_first=True, limit=limit)
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


def _known_entity(engine: Engine, text: str, settings: Settings) -> str:
    """The entity as stored; one with no article at all is a typo more often than not, so it is an
    error rather than an empty answer."""
    from storage.queries import entity_last_published

    entity = entity_name(text, settings.market_entity)
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
