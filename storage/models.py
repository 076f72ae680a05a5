"""The score database: typed SQLAlchemy 2 models. Migrations in storage/migrations mirror them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Article(Base):
    """One news article, keyed by its natural id so replays and re-sends land on the same row."""

    __tablename__ = "articles"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    headline: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(Text)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)


class ArticleEntity(Base):
    """Who an article is about. `published_at` is copied from the article for range scans per entity."""

    __tablename__ = "article_entities"
    __table_args__ = (
        Index("ix_article_entities_entity_published_at", "entity", "published_at"),
        Index("ix_article_entities_entity_story_key_published_at", "entity", "story_key", "published_at"),
    )

    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    entity: Mapped[str] = mapped_column(Text, primary_key=True)
    matched_by: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    story_key: Mapped[str | None] = mapped_column(Text)
    """Copies of one story share it (pipeline/stories.py); NULL: a story of its own."""


class ArticleScore(Base):
    """Model output for one article; one row per model version so models can be compared."""

    __tablename__ = "article_scores"

    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    model_version: Mapped[str] = mapped_column(Text, primary_key=True)
    p_negative: Mapped[float] = mapped_column(Float)
    p_neutral: Mapped[float] = mapped_column(Float)
    p_positive: Mapped[float] = mapped_column(Float)
    sentiment: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(Text)
    chunks: Mapped[int] = mapped_column(Integer, default=1)
    risk_score: Mapped[float] = mapped_column(Float, server_default=text("0"))
    """Strongest risk-event match: 0, 0.6 (usually the event) or 1 (names it); pipeline/scoring/risk_events.py."""
    risk_tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    scored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Bucket(Base):
    """Per-entity, per-width bucket of the emotion series (event time); definitions in pipeline/series.py."""

    __tablename__ = "buckets"
    __table_args__ = (Index("ix_buckets_width_seconds_bucket_start", "width_seconds", "bucket_start"),)
    """Detection reads every entity's recent buckets of one width: a range scan, not a table scan."""

    entity: Mapped[str] = mapped_column(Text, primary_key=True)
    width_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    model_version: Mapped[str] = mapped_column(Text)
    article_count: Mapped[int] = mapped_column(Integer)
    mean_p_negative: Mapped[float] = mapped_column(Float)
    mean_p_neutral: Mapped[float] = mapped_column(Float)
    mean_p_positive: Mapped[float] = mapped_column(Float)
    negative_share: Mapped[float] = mapped_column(Float)
    mean_sentiment: Mapped[float] = mapped_column(Float)
    emotion_index: Mapped[float] = mapped_column(Float)
    decay_sum: Mapped[float] = mapped_column(Float)
    """Sum of 2**(-age/half_life) * sentiment over the entity's articles before the bucket's end."""
    decay_weight: Mapped[float] = mapped_column(Float)
    """Sum of 2**(-age/half_life) over the same articles; emotion_index = decay_sum / decay_weight."""
    story_count: Mapped[float] = mapped_column(Float, server_default=text("0"))
    """Distinct stories: a copy of a story from the day before counts 0, one source's burst at one instant 1."""
    adverse_count: Mapped[float] = mapped_column(Float, server_default=text("0"))
    """The same count over adverse articles (negative, or tagged with a risk event): what alerting judges."""
    risk_count: Mapped[float] = mapped_column(Float, server_default=text("0"))
    """The same count over the risk-event articles among them (a lexicon match that names the event)."""
    latest_published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """The latest event time among the bucket's articles: later articles can be added without a re-read."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Alert(Base):
    """One alert episode of a fingerprint (entity, rule, width), from firing to resolved.

    `dedup_key` (fingerprint @ first bucket) and the partial unique index (one firing alert per
    fingerprint) are the last guards against two schedulers firing the same alert. Lifecycle times
    (`last_notified_at`, `resolved_at`) are event times, bucket ends, so backtests replay exactly.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index("uq_alerts_firing_fingerprint", "fingerprint", unique=True, postgresql_where=text("state = 'firing'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(Text, unique=True)
    fingerprint: Mapped[str] = mapped_column(Text, index=True)
    entity: Mapped[str] = mapped_column(Text, index=True)
    rule: Mapped[str] = mapped_column(Text)
    width_seconds: Mapped[int] = mapped_column(Integer)
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    value: Mapped[float] = mapped_column(Float)
    baseline: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    fired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """Latest bucket the alert was judged on."""
    quiet_buckets: Mapped[int] = mapped_column(Integer, default=0)
    """Consecutive buckets back within the baseline; resolves at FINSENT_ALERT_RESOLVE_BUCKETS."""
    silenced: Mapped[bool] = mapped_column(Boolean, default=False)


class AlertEvent(Base):
    """A state change of an alert: fired, escalated, repeated or resolved. Deliveries follow events."""

    __tablename__ = "alert_events"
    __table_args__ = (
        UniqueConstraint("alert_id", "kind", "bucket_start"),
        ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alert_id: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(Text)
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    severity: Mapped[str] = mapped_column(Text)
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Silence(Base):
    """While active, alerts of matching entities are recorded but not notified."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    entity_glob: Mapped[str] = mapped_column(Text)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DetectionProgress(Base):
    """How far the scheduler has judged each width: the start of the last closed bucket evaluated."""

    __tablename__ = "detection_progress"

    width_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    evaluated_through: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Delivery(Base):
    """Outbox row: one notification of one alert event on one channel, retried until sent or failed."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "channel", "event"),
        ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alert_id: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
