"""The reads only the HTTP API needs: pages (limit, offset and the total), one alert, the latest index.

The API answers JSON lists a page at a time, so these return plain rows and a count rather than
DataFrames; what the CLI reads as well (entity_summary, filled_series, ...) stays in queries.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by, array_agg, distinct_on

from storage.alerts import StoredSilence
from storage.models import Alert, Article, ArticleEntity, Bucket, Silence
from storage.queries import _newest_score

ALERT_FIELDS = (
    "id", "entity", "rule", "severity", "state", "width_seconds", "bucket_start", "last_bucket_start", "fired_at",
    "resolved_at", "acked_at", "silenced",
    "value", "baseline", "evidence",
)


@dataclass(frozen=True)
class Page:
    """One page of rows and how many rows match in all."""

    rows: list[dict[str, Any]]
    total: int


def latest_emotion_indexes(engine: Engine, entities: Sequence[str], width_seconds: int, end: datetime) -> dict[str, float]:
    """Per entity, the emotion index of its newest stored bucket of `width_seconds` starting before `end`."""
    if not entities:
        return {}
    statement = (
        select(Bucket.entity, Bucket.emotion_index)
        .where(Bucket.entity.in_(list(entities)), Bucket.width_seconds == width_seconds, Bucket.bucket_start < end)
        .order_by(Bucket.entity, Bucket.bucket_start.desc())
        .ext(distinct_on(Bucket.entity))
    )
    with engine.connect() as connection:
        return {row.entity: row.emotion_index for row in connection.execute(statement)}


def article_page(engine: Engine, entity: str | None, start: datetime | None, end: datetime | None,
                 limit: int, offset: int) -> Page:
    """Articles published in [start, end) (a None bound is open), about `entity` if given, newest
    first, each with its newest score (None fields when unscored) and every entity it is about."""
    key, moment = (Article.id, Article.published_at) if entity is None else (ArticleEntity.article_id, ArticleEntity.published_at)
    conditions = _window(moment, start, end)
    if entity is not None:
        conditions.append(ArticleEntity.entity == entity)
    count = select(func.count()).select_from(Article if entity is None else ArticleEntity).where(*conditions)
    ordered = (
        select(key.label("id")).where(*conditions).order_by(moment.desc(), key.desc()).limit(limit).offset(offset).subquery()
    )
    score = _newest_score(Article.id)
    entities = (
        select(array_agg(aggregate_order_by(ArticleEntity.entity, ArticleEntity.entity)))
        .where(ArticleEntity.article_id == Article.id)
        .scalar_subquery()
    )
    statement = (
        select(Article.id, Article.published_at, Article.headline, Article.source, Article.url, entities.label("entities"),
               score.c.p_negative, score.c.p_neutral, score.c.p_positive, score.c.sentiment, score.c.model_version)
        .join(ordered, ordered.c.id == Article.id)
        .outerjoin(score, true())
        .order_by(Article.published_at.desc(), Article.id.desc())
    )
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(statement)]
        total = int(connection.execute(count).scalar_one())
    for row in rows:
        row["entities"] = list(row["entities"] or [])
    return Page(rows, total)


def alert_page(engine: Engine, *, state: str | None, entity: str | None, acknowledged: bool | None,
               limit: int, offset: int) -> Page:
    """Alerts, newest bucket first (as `finsent alerts` lists them), filtered by state, entity and
    whether they are acknowledged."""
    conditions: list[ColumnElement[bool]] = []
    if state is not None:
        conditions.append(Alert.state == state)
    if entity is not None:
        conditions.append(Alert.entity == entity)
    if acknowledged is not None:
        conditions.append(Alert.acked_at.is_not(None) if acknowledged else Alert.acked_at.is_(None))
    statement = (
        select(*(Alert.__table__.c[name] for name in ALERT_FIELDS))
        .where(*conditions)
        .order_by(Alert.bucket_start.desc(), Alert.id.desc())
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(statement)]
        total = int(connection.execute(select(func.count()).select_from(Alert).where(*conditions)).scalar_one())
    return Page(rows, total)


def alert_row(engine: Engine, alert_id: int) -> dict[str, Any] | None:
    """One alert's ALERT_FIELDS, None when there is no such alert."""
    statement = select(*(Alert.__table__.c[name] for name in ALERT_FIELDS)).where(Alert.id == alert_id)
    with engine.connect() as connection:
        row = connection.execute(statement).first()
    return None if row is None else dict(row._mapping)


def silence_page(engine: Engine, limit: int, offset: int) -> tuple[list[StoredSilence], int]:
    """Silences, newest first, ended ones included (the caller tells active from ended)."""
    statement = (
        select(Silence.id, Silence.entity_glob, Silence.ends_at, Silence.reason, Silence.created_at)
        .order_by(Silence.created_at.desc(), Silence.id.desc())
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as connection:
        rows = [StoredSilence(**row._mapping) for row in connection.execute(statement)]
        total = int(connection.execute(select(func.count()).select_from(Silence)).scalar_one())
    return rows, total


def _window(column: Any, start: datetime | None, end: datetime | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return conditions
