"""Read helpers that return pandas DataFrames, for analysts and for the CLI."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, and_, select

from storage.models import Article, ArticleEntity, ArticleScore, Timestep

ARTICLE_COLUMNS = [
    "id", "published_at", "headline", "source", "url", "matched_by",
    "model_version", "p_negative", "p_neutral", "p_positive", "sentiment", "label",
]
TIMESTEP_COLUMNS = [
    "bucket_start", "article_count", "mean_p_negative", "mean_p_neutral", "mean_p_positive",
    "negative_share", "mean_sentiment", "emotion_index", "model_version",
]


def articles_for_entity(engine: Engine, entity: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Articles about `entity` published in [start, end), oldest first, with scores where present."""
    statement = (
        select(
            Article.id, Article.published_at, Article.headline, Article.source, Article.url,
            ArticleEntity.matched_by, ArticleScore.model_version, ArticleScore.p_negative,
            ArticleScore.p_neutral, ArticleScore.p_positive, ArticleScore.sentiment, ArticleScore.label,
        )
        .join(ArticleEntity, ArticleEntity.article_id == Article.id)
        .outerjoin(ArticleScore, ArticleScore.article_id == Article.id)
        .where(
            and_(
                ArticleEntity.entity == entity,
                ArticleEntity.published_at >= start,
                ArticleEntity.published_at < end,
            )
        )
        .order_by(Article.published_at, Article.id)
    )
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(statement).all(), columns=ARTICLE_COLUMNS)
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    return frame


def timesteps_for_entity(
    engine: Engine, entity: str, width_seconds: int, start: datetime, end: datetime
) -> pd.DataFrame:
    """Stored buckets of one entity and width with bucket_start in [start, end), oldest first."""
    statement = (
        select(
            Timestep.bucket_start, Timestep.article_count, Timestep.mean_p_negative, Timestep.mean_p_neutral,
            Timestep.mean_p_positive, Timestep.negative_share, Timestep.mean_sentiment, Timestep.emotion_index,
            Timestep.model_version,
        )
        .where(
            and_(
                Timestep.entity == entity,
                Timestep.width_seconds == width_seconds,
                Timestep.bucket_start >= start,
                Timestep.bucket_start < end,
            )
        )
        .order_by(Timestep.bucket_start)
    )
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(statement).all(), columns=TIMESTEP_COLUMNS)
    frame["bucket_start"] = pd.to_datetime(frame["bucket_start"], utc=True)
    return frame
