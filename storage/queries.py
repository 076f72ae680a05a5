"""Read helpers that return pandas DataFrames, for analysts and for the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Select, and_, func, select

from storage.models import Alert, Article, ArticleEntity, ArticleScore, Timestep

ARTICLE_COLUMNS = [
    "id", "published_at", "headline", "source", "url", "matched_by",
    "model_version", "p_negative", "p_neutral", "p_positive", "sentiment", "label",
]
TIMESTEP_COLUMNS = [
    "bucket_start", "article_count", "mean_p_negative", "mean_p_neutral", "mean_p_positive",
    "negative_share", "mean_sentiment", "emotion_index", "model_version",
]
_MEASURES = ["mean_p_negative", "mean_p_neutral", "mean_p_positive", "negative_share", "mean_sentiment", "emotion_index"]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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


def timestep_series(
    engine: Engine,
    entity: str,
    width_seconds: int,
    start: datetime,
    end: datetime,
    model_version: str | None = None,
) -> pd.DataFrame:
    """The series as a regular grid: one row per epoch-aligned bucket starting in [start, end).

    Stored rows exist only for buckets with articles; here an empty bucket gets article_count 0
    and NaN means, negative_share and mean_sentiment, while emotion_index (and model_version) carry
    forward from the last stored bucket at or before it, also one before `start`: the decayed index
    does not change across empty buckets. Before any stored bucket the index is NaN. With
    `model_version`, only that model's buckets count. bucket_start is tz-aware UTC.
    """
    width = timedelta(seconds=width_seconds)
    first = EPOCH + -((EPOCH - start) // width) * width
    buckets = max(0, -((first - end) // width))
    grid = pd.DatetimeIndex([first + k * width for k in range(buckets)], name="bucket_start").as_unit("us")
    stored = (
        _timestep_statement(entity, width_seconds, model_version)
        .where(Timestep.bucket_start >= first, Timestep.bucket_start < end)
        .order_by(Timestep.bucket_start)
    )
    before = (
        _timestep_statement(entity, width_seconds, model_version)
        .where(Timestep.bucket_start < first)
        .order_by(Timestep.bucket_start.desc())
        .limit(1)
    )
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(stored).all(), columns=TIMESTEP_COLUMNS)
        seed = connection.execute(before).first()
    frame["bucket_start"] = pd.to_datetime(frame["bucket_start"], utc=True).dt.as_unit("us")
    frame = frame.set_index("bucket_start").reindex(grid)
    frame["article_count"] = frame["article_count"].fillna(0).astype("int64")
    frame[_MEASURES] = frame[_MEASURES].astype("float64")
    for column in ("emotion_index", "model_version"):
        carried = frame[column].ffill()
        if seed is not None:
            carried = carried.fillna(getattr(seed, column))
        frame[column] = carried
    return frame.reset_index()[TIMESTEP_COLUMNS]


def _timestep_statement(entity: str, width_seconds: int, model_version: str | None) -> Select[Any]:
    statement = (
        select(*(Timestep.__table__.c[name] for name in TIMESTEP_COLUMNS))
        .where(Timestep.entity == entity, Timestep.width_seconds == width_seconds)
    )
    if model_version is not None:
        statement = statement.where(Timestep.model_version == model_version)
    return statement


DETECTION_COLUMNS = [
    "entity", "bucket_start", "article_count", "mean_p_negative", "negative_share", "mean_sentiment", "emotion_index",
    "decay_weight",
]


def timesteps_window(
    connection: Connection, width_seconds: int, start: datetime, end: datetime, entities: Sequence[str] | None = None
) -> pd.DataFrame:
    """Stored buckets of every entity (or of `entities`) of one width starting in [start, end):
    the frame detection judges."""
    statement = select(*(Timestep.__table__.c[name] for name in DETECTION_COLUMNS)).where(
        Timestep.width_seconds == width_seconds, Timestep.bucket_start >= start, Timestep.bucket_start < end
    )
    if entities is not None:
        statement = statement.where(Timestep.entity.in_(list(entities)))
    frame = pd.DataFrame(connection.execute(statement).all(), columns=DETECTION_COLUMNS)
    frame["bucket_start"] = pd.to_datetime(frame["bucket_start"], utc=True)
    return frame


def ingest_watermark(connection: Connection) -> tuple[datetime | None, datetime | None]:
    """(newest article event time, newest ingestion time), both None on an empty database."""
    newest_event = connection.execute(select(func.max(Article.published_at))).scalar()
    newest_ingest = connection.execute(select(func.max(Article.ingested_at))).scalar()
    return newest_event, newest_ingest


def top_negative_articles(connection: Connection, entity: str, start: datetime, end: datetime, limit: int = 3) -> list[dict[str, Any]]:
    """The most negative scored articles about `entity` published in [start, end): alert evidence."""
    statement = (
        select(Article.id, Article.headline, Article.published_at, ArticleScore.p_negative)
        .join(ArticleEntity, ArticleEntity.article_id == Article.id)
        .join(ArticleScore, ArticleScore.article_id == Article.id)
        .where(ArticleEntity.entity == entity, ArticleEntity.published_at >= start, ArticleEntity.published_at < end)
        .order_by(ArticleScore.p_negative.desc(), Article.id)
        .limit(limit)
    )
    return [
        {"id": row.id, "headline": row.headline, "p_negative": round(float(row.p_negative), 4),
         "published_at": row.published_at.isoformat()}
        for row in connection.execute(statement)
    ]


ALERT_COLUMNS = [
    "id", "entity", "rule", "width_seconds", "bucket_start", "severity", "state", "value", "baseline",
    "fired_at", "resolved_at", "acked_at", "silenced", "evidence",
]


def alerts_frame(
    engine: Engine, entity: str | None = None, since: datetime | None = None, state: str | None = None
) -> pd.DataFrame:
    """Alerts, newest bucket first; `since` filters on the bucket that fired them (event time)."""
    statement = select(*(Alert.__table__.c[name] for name in ALERT_COLUMNS)).order_by(Alert.bucket_start.desc(), Alert.id.desc())
    if entity is not None:
        statement = statement.where(Alert.entity == entity)
    if since is not None:
        statement = statement.where(Alert.bucket_start >= since)
    if state is not None:
        statement = statement.where(Alert.state == state)
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(statement).all(), columns=ALERT_COLUMNS)
    for column in ("bucket_start", "fired_at", "resolved_at", "acked_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
