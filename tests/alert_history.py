"""Synthetic stored history for alerting tests: timesteps plus the scored articles behind a burst,
written through the storage models (as the worker would leave them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import Engine, insert

from storage.models import Article, ArticleEntity, ArticleScore, Timestep

WIDTH = 300
T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
MARKET = "MARKET"
MODEL = "test-model"


def bucket(k: int, start: datetime = T0) -> datetime:
    return start + timedelta(seconds=WIDTH * k)


def write_history(engine: Engine, entities: Sequence[str], buckets: int, burst_entity: str | None = None,
                  burst_at: int | None = None, seed: int = 7, start: datetime = T0) -> None:
    """Steady neutral buckets for every entity (and MARKET); a negative burst of 10 articles for
    `burst_entity` at bucket `burst_at`, with its articles stored for the alert's evidence."""
    rng = np.random.default_rng(seed)
    rows = []
    decay = 2 ** (-1 / 12)  # a one-hour half-life in 5-minute buckets
    for entity in (*entities, MARKET):
        count = 40 if entity == MARKET else 5
        decay_sum = decay_weight = 0.0
        for k in range(buckets):
            share = float(np.clip(0.1 + rng.normal(0, 0.03), 0, 1))
            n = count
            if entity == burst_entity and k == burst_at:
                share, n = 0.9, 10
            decay_sum = decay_sum * decay + n * -share
            decay_weight = decay_weight * decay + n
            rows.append({
                "entity": entity, "width_seconds": WIDTH, "bucket_start": bucket(k, start), "model_version": MODEL,
                "article_count": n, "mean_p_negative": share, "mean_p_neutral": 1 - share, "mean_p_positive": 0.0,
                "negative_share": share, "mean_sentiment": -share, "emotion_index": decay_sum / decay_weight,
                "decay_sum": decay_sum, "decay_weight": decay_weight,
            })
    with engine.begin() as connection:
        connection.execute(insert(Timestep), rows)
        if burst_entity is not None and burst_at is not None:
            write_burst_articles(connection, burst_entity, bucket(burst_at, start), 10)
        # Every bucket has articles: the newest event time is the end of history.
        connection.execute(insert(Article), [{
            "id": f"tail-{k}", "published_at": bucket(k, start) + timedelta(seconds=1), "headline": "steady", "body": "",
            "source": "t", "url": None, "lang": "en", "ingested_at": bucket(k, start) + timedelta(seconds=2)} for k in range(buckets)])


def write_burst_articles(connection, entity: str, start: datetime, count: int) -> None:  # type: ignore[no-untyped-def]
    articles = [{"id": f"{entity}-neg-{i}", "published_at": start + timedelta(seconds=10 * i),
                 "headline": f"{entity} plunges after recall number {i}", "body": "", "source": "t", "url": None,
                 "lang": "en", "ingested_at": start + timedelta(seconds=10 * i + 1)} for i in range(count)]
    connection.execute(insert(Article), articles)
    connection.execute(insert(ArticleEntity), [{"article_id": a["id"], "entity": entity, "matched_by": "ticker",
                                                "published_at": a["published_at"]} for a in articles])
    connection.execute(insert(ArticleScore), [{"article_id": a["id"], "model_version": MODEL, "p_negative": 0.9 - i / 100,
                                               "p_neutral": 0.05 + i / 100, "p_positive": 0.05, "sentiment": -0.85 + i / 100,
                                               "label": "negative", "chunks": 1} for i, a in enumerate(articles)])
