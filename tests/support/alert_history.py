"""Synthetic stored history for alerting tests: scored articles and the buckets computed from
them, written with the worker's own storage code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import Connection, Engine, insert

from pipeline.series import SeriesConfig, update_series
from pipeline.stories import story_key
from storage.models import Article
from storage.writes import ArticleRecord, EntityMention, ScoreRecord, write_articles, write_scores

WIDTH = 300
T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
MARKET = "MARKET"
MODEL = "test-model"


def bucket(k: int, start: datetime = T0) -> datetime:
    return start + timedelta(seconds=WIDTH * k)


def write_history(engine: Engine, entities: Sequence[str], buckets: int, burst_entity: str | None = None,
                  burst_at: int | None = None, seed: int = 7, start: datetime = T0) -> None:
    """Steady news for every entity (an article every half hour, one in six adverse), and a burst
    of 10 adverse headlines about `burst_entity` in bucket `burst_at`; written as the worker
    writes them (articles, mentions, scores, then the buckets computed from them)."""
    rng = np.random.default_rng(seed)
    steady = [
        Story(f"{entity}-{k}", entity, bucket(k, start) + timedelta(seconds=int(rng.integers(1, 30))),
              f"{entity} update {k}", adverse=(k // 6 + index) % 6 == 0)
        for index, entity in enumerate(entities) for k in sorted({*range(index, buckets, 6), buckets - 1})
    ]
    burst = [] if burst_entity is None or burst_at is None else burst_stories(burst_entity, bucket(burst_at, start), 10)
    write_stories(engine, steady + burst)
    with engine.begin() as connection:
        # Every bucket has an article: the newest event time is the end of history.
        connection.execute(insert(Article), [{
            "id": f"tail-{k}", "published_at": bucket(k, start) + timedelta(seconds=1), "headline": "steady", "body": "",
            "source": "t", "url": None, "lang": "en", "ingested_at": bucket(k, start) + timedelta(seconds=2)} for k in range(buckets)])
        # Ingested as they were published: a replay of the past, idle since its end.
        connection.exec_driver_sql("UPDATE articles SET ingested_at = published_at + interval '2 seconds'")


@dataclass(frozen=True)
class Story:
    id: str
    entity: str
    published_at: datetime
    headline: str
    adverse: bool


def burst_stories(entity: str, start: datetime, count: int) -> list[Story]:
    return [Story(f"{entity}-neg-{i}", entity, start + timedelta(seconds=10 * i), f"{entity} plunges after recall number {i}",
                  adverse=True) for i in range(count)]


def write_stories(engine: Engine, stories: Sequence[Story]) -> None:
    with engine.begin() as connection:
        write_stories_in(connection, stories)


def write_burst_articles(connection: Connection, entity: str, start: datetime, count: int) -> None:
    """A burst written inside the caller's transaction (buckets included)."""
    write_stories_in(connection, burst_stories(entity, start, count))


def write_stories_in(connection: Connection, stories: Sequence[Story]) -> None:
    """Articles, mentions (and MARKET's), scores and buckets, as the worker writes them. An
    adverse story scores p_negative 0.9, the burst's i-th one 0.9 - i/100 (so their order is known)."""
    records = [ArticleRecord(s.id, s.published_at, s.headline, "", "t", None, "en",
                             (EntityMention(s.entity, "tickers"), EntityMention(MARKET, "market")), story_key(s.headline))
               for s in stories]
    scores = []
    for s in stories:
        rank = int(s.id.rsplit("-", 1)[1]) if "-neg-" in s.id else 0
        negative, neutral = (0.9 - rank / 100, 0.05 + rank / 100) if s.adverse else (0.05, 0.9)
        scores.append(ScoreRecord(s.id, MODEL, negative, neutral, round(1 - negative - neutral, 6),
                                  "negative" if s.adverse else "neutral", 1))
    times: dict[str, list[datetime]] = {}
    for s in stories:
        for entity in (s.entity, MARKET):
            times.setdefault(entity, []).append(s.published_at)
    write_articles(connection, records)
    write_scores(connection, scores)
    update_series(connection, times, MODEL, SeriesConfig(widths=(WIDTH,)))
