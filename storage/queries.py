"""Read helpers that return pandas DataFrames, for analysts and for the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Connection, DateTime, Engine, Select, and_, bindparam, case, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by, array_agg
from sqlalchemy.sql import ColumnExpressionArgument
from sqlalchemy.sql.selectable import LateralFromClause

from storage.models import Alert, Article, ArticleEntity, ArticleScore, Bucket

ARTICLE_COLUMNS = [
    "id", "published_at", "headline", "source", "url", "matched_by",
    "model_version", "p_negative", "p_neutral", "p_positive", "sentiment", "label", "risk_score", "risk_tags",
]
BUCKET_COLUMNS = [
    "bucket_start", "article_count", "mean_p_negative", "mean_p_neutral", "mean_p_positive",
    "negative_share", "mean_sentiment", "emotion_index", "model_version",
]
_MEASURES = ["mean_p_negative", "mean_p_neutral", "mean_p_positive", "negative_share", "mean_sentiment", "emotion_index"]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def articles_for_entity(
    engine: Engine, entity: str, start: datetime, end: datetime, *, newest_first: bool = False, limit: int | None = None
) -> pd.DataFrame:
    """Articles about `entity` published in [start, end), oldest first (or newest first), at most
    `limit`. One row per article with its newest score (model_version says which model gave it),
    NaN where it is not scored yet."""
    score = _newest_score(Article.id)
    order = (Article.published_at.desc(), Article.id.desc()) if newest_first else (Article.published_at, Article.id)
    statement = (
        select(
            Article.id, Article.published_at, Article.headline, Article.source, Article.url,
            ArticleEntity.matched_by, score.c.model_version, score.c.p_negative,
            score.c.p_neutral, score.c.p_positive, score.c.sentiment, score.c.label, score.c.risk_score,
            score.c.risk_tags,
        )
        .join(ArticleEntity, ArticleEntity.article_id == Article.id)
        .outerjoin(score, true())
        .where(
            and_(
                ArticleEntity.entity == entity,
                ArticleEntity.published_at >= start,
                ArticleEntity.published_at < end,
            )
        )
        .order_by(*order)
        .limit(limit)
    )
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(statement).all(), columns=ARTICLE_COLUMNS)
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    frame["risk_tags"] = frame["risk_tags"].map(lambda tags: ",".join(tags) if isinstance(tags, list) else "")
    return frame


def _newest_score(article_id: ColumnExpressionArgument[str]) -> LateralFromClause:
    """The article's newest score, whichever model gave it: an article rescored by a second model
    still counts once."""
    return (
        select(
            ArticleScore.model_version, ArticleScore.p_negative, ArticleScore.p_neutral, ArticleScore.p_positive,
            ArticleScore.sentiment, ArticleScore.label, ArticleScore.risk_score, ArticleScore.risk_tags,
        )
        .where(ArticleScore.article_id == article_id)
        .order_by(ArticleScore.scored_at.desc(), ArticleScore.model_version.desc())
        .limit(1)
        .lateral("newest_score")
    )


ENTITY_SUMMARY_COLUMNS = ["entity", "articles", "mean_sentiment", "negative_share", "last_published_at", "firing_alerts"]


def entity_summary(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Per entity with articles published in [start, end): how many, their mean sentiment and the
    share whose top label is negative (over each article's newest score; unscored articles count
    only as articles), the newest one's event time, and how many of the entity's alerts fire now.
    Most articles first. Read from the articles rather than the buckets so that the window need
    not fall on bucket boundaries."""
    score = _newest_score(ArticleEntity.article_id)
    negative = case((score.c.label == "negative", 1.0), (score.c.label.is_not(None), 0.0))
    per_entity = (
        select(
            ArticleEntity.entity, func.count().label("articles"), func.avg(score.c.sentiment).label("mean_sentiment"),
            func.avg(negative).label("negative_share"), func.max(ArticleEntity.published_at).label("last_published_at"),
        )
        .select_from(Article)
        .join(ArticleEntity, ArticleEntity.article_id == Article.id)
        .outerjoin(score, true())
        .where(Article.published_at >= start, Article.published_at < end)
        .group_by(ArticleEntity.entity)
        .subquery()
    )
    firing = (
        select(Alert.entity, func.count().label("firing_alerts")).where(Alert.state == "firing").group_by(Alert.entity).subquery()
    )
    statement = (
        select(*per_entity.c, func.coalesce(firing.c.firing_alerts, 0))
        .outerjoin(firing, firing.c.entity == per_entity.c.entity)
        .order_by(per_entity.c.articles.desc(), per_entity.c.entity)
    )
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(statement).all(), columns=ENTITY_SUMMARY_COLUMNS)
    frame[["articles", "firing_alerts"]] = frame[["articles", "firing_alerts"]].astype("int64")
    frame[["mean_sentiment", "negative_share"]] = frame[["mean_sentiment", "negative_share"]].astype("float64")
    frame["last_published_at"] = pd.to_datetime(frame["last_published_at"], utc=True)
    return frame


def entity_last_published(engine: Engine, entity: str) -> datetime | None:
    """Event time of the newest article about `entity`, None when there is none: tells an entity the
    database has never seen (a typo) from one that is merely quiet."""
    with engine.connect() as connection:
        return connection.execute(select(func.max(ArticleEntity.published_at)).where(ArticleEntity.entity == entity)).scalar()


def stored_buckets(
    engine: Engine, entity: str, width_seconds: int, start: datetime, end: datetime
) -> pd.DataFrame:
    """Stored buckets of one entity and width with bucket_start in [start, end), oldest first."""
    statement = (
        select(
            Bucket.bucket_start, Bucket.article_count, Bucket.mean_p_negative, Bucket.mean_p_neutral,
            Bucket.mean_p_positive, Bucket.negative_share, Bucket.mean_sentiment, Bucket.emotion_index,
            Bucket.model_version,
        )
        .where(
            and_(
                Bucket.entity == entity,
                Bucket.width_seconds == width_seconds,
                Bucket.bucket_start >= start,
                Bucket.bucket_start < end,
            )
        )
        .order_by(Bucket.bucket_start)
    )
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(statement).all(), columns=BUCKET_COLUMNS)
    frame["bucket_start"] = pd.to_datetime(frame["bucket_start"], utc=True)
    return frame


def filled_series(
    engine: Engine,
    entity: str,
    width_seconds: int,
    start: datetime,
    end: datetime,
    model_version: str | None = None,
    *,
    stored_width_seconds: int | None = None,
) -> pd.DataFrame:
    """The series as a regular grid: one row per epoch-aligned bucket starting in [start, end).

    Stored rows exist only for buckets with articles; here an empty bucket gets article_count 0
    and NaN means, negative_share and mean_sentiment, while emotion_index (and model_version) carry
    forward from the last stored bucket at or before it, also one before `start`: the decayed index
    does not change across empty buckets. Before any stored bucket the index is NaN. With
    `model_version`, only that model's buckets count. bucket_start is tz-aware UTC.

    With `stored_width_seconds` (a width that divides `width_seconds`), the grid is summed from
    that width's rows in SQL (see `_binned_statement`), so a long history never reaches pandas
    bucket by bucket.
    """
    stored_width = stored_width_seconds or width_seconds
    if width_seconds % stored_width:
        raise ValueError(f"a {width_seconds}s grid cannot be summed from {stored_width}s buckets: use a multiple")
    width = timedelta(seconds=width_seconds)
    first = EPOCH + -((EPOCH - start) // width) * width
    buckets = max(0, -((first - end) // width))
    grid = pd.DatetimeIndex([first + k * width for k in range(buckets)], name="bucket_start").as_unit("us")
    if stored_width == width_seconds:
        stored = (
            _bucket_statement(entity, width_seconds, model_version)
            .where(Bucket.bucket_start >= first, Bucket.bucket_start < end)
            .order_by(Bucket.bucket_start)
        )
    else:
        stored = _binned_statement(entity, stored_width, width_seconds, first, end, model_version)
    before = (
        _bucket_statement(entity, stored_width, model_version)
        .where(Bucket.bucket_start < first)
        .order_by(Bucket.bucket_start.desc())
        .limit(1)
    )
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(stored).all(), columns=BUCKET_COLUMNS)
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
    return frame.reset_index()[BUCKET_COLUMNS]


def _binned_statement(
    entity: str, stored_width: int, width_seconds: int, first: datetime, end: datetime, model_version: str | None
) -> Select[Any]:
    """`stored_width` rows in [first, end) summed per epoch-aligned `width_seconds` bin, oldest
    first: counts add up, means and negative_share are weighted by article_count (exactly what one
    bucket of the wider width would hold), and emotion_index and model_version are the bin's last
    stored bucket's (the decayed index at the bin's end)."""
    rows = (
        _bucket_statement(entity, stored_width, model_version)
        .add_columns(func.date_bin(timedelta(seconds=width_seconds), Bucket.bucket_start, EPOCH).label("bin"))
        .where(Bucket.bucket_start >= first, Bucket.bucket_start < end)
        .subquery()
    )
    articles = func.sum(rows.c.article_count)

    def weighted(name: str) -> ColumnElement[Any]:
        return func.sum(rows.c[name] * rows.c.article_count) / func.nullif(articles, 0)

    def last(name: str) -> ColumnElement[Any]:
        return array_agg(aggregate_order_by(rows.c[name], rows.c.bucket_start.desc()))[1]

    columns = {"bucket_start": rows.c.bin, "article_count": articles, "emotion_index": last("emotion_index"),
               "model_version": last("model_version")}
    columns |= {name: weighted(name) for name in _MEASURES if name != "emotion_index"}
    return select(*(columns[name].label(name) for name in BUCKET_COLUMNS)).group_by(rows.c.bin).order_by(rows.c.bin)


def _bucket_statement(entity: str, width_seconds: int, model_version: str | None) -> Select[Any]:
    statement = (
        select(*(Bucket.__table__.c[name] for name in BUCKET_COLUMNS))
        .where(Bucket.entity == entity, Bucket.width_seconds == width_seconds)
    )
    if model_version is not None:
        statement = statement.where(Bucket.model_version == model_version)
    return statement


ACTIVITY_COLUMNS = ["entity", "buckets", "article_count", "first_bucket_start", "last_bucket_start"]


def entity_activity(
    engine: Engine, width_seconds: int, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Per entity, its stored buckets of one width starting in [start, end) (a None bound is open):
    how many, their articles, the first and last bucket_start; most articles first. A plot picks its
    entities and its default window (the whole stored span) from this."""
    articles = func.sum(Bucket.article_count)
    statement = (
        select(Bucket.entity, func.count(), articles, func.min(Bucket.bucket_start), func.max(Bucket.bucket_start))
        .where(Bucket.width_seconds == width_seconds)
        .group_by(Bucket.entity)
        .order_by(articles.desc(), Bucket.entity)
    )
    if start is not None:
        statement = statement.where(Bucket.bucket_start >= start)
    if end is not None:
        statement = statement.where(Bucket.bucket_start < end)
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(statement).all(), columns=ACTIVITY_COLUMNS)
    frame[["buckets", "article_count"]] = frame[["buckets", "article_count"]].astype("int64")
    for column in ("first_bucket_start", "last_bucket_start"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


DETECTION_COLUMNS = ["entity", "bucket_start", "adverse_count", "risk_count", "story_count", "article_count",
                     "mean_p_negative"]
BAND_DETECTION_COLUMNS = ["entity", "band", "adverse_count", "risk_count", "story_count", "article_count",
                          "p_negative_mass"]


def buckets_window(
    connection: Connection, width_seconds: int, start: datetime, end: datetime, entities: Sequence[str] | None = None
) -> pd.DataFrame:
    """Stored buckets of every entity (or of `entities`) of one width starting in [start, end):
    the horizons detection counts over."""
    statement = select(*(Bucket.__table__.c[name] for name in DETECTION_COLUMNS)).where(
        Bucket.width_seconds == width_seconds, Bucket.bucket_start >= start, Bucket.bucket_start < end
    )
    if entities is not None:
        statement = statement.where(Bucket.entity.in_(list(entities)))
    frame = _frame(connection.execute(statement).all(), DETECTION_COLUMNS)
    frame["bucket_start"] = pd.to_datetime(frame["bucket_start"], utc=True)
    return frame


def history_bands(connection: Connection, width_seconds: int, edges: Sequence[datetime]) -> pd.DataFrame:
    """Per entity, the sums of the stored buckets of one width between consecutive `edges` (band b:
    [edges[b - 1], edges[b])): the trailing history detection's expected rates come from, for every
    entity (the prior needs peers), in a few rows per entity however long the window."""
    if len(edges) < 2:
        return pd.DataFrame(columns=BAND_DETECTION_COLUMNS)
    thresholds = bindparam("edges", list(edges), type_=ARRAY(DateTime(timezone=True)))
    band = func.width_bucket(Bucket.bucket_start, thresholds).label("band")
    statement = (
        select(Bucket.entity, band, func.sum(Bucket.adverse_count), func.sum(Bucket.risk_count),
               func.sum(Bucket.story_count), func.sum(Bucket.article_count),
               func.sum(Bucket.mean_p_negative * Bucket.article_count))
        .where(Bucket.width_seconds == width_seconds, Bucket.bucket_start >= edges[0],
               Bucket.bucket_start < edges[-1])
        .group_by(Bucket.entity, band)
    )
    return _frame(connection.execute(statement).all(), BAND_DETECTION_COLUMNS)


def _frame(rows: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    """A DataFrame built column by column: from SQLAlchemy rows directly, pandas probes every row
    with hasattr(), which a Row answers by raising and catching (seconds on a million rows)."""
    values: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in columns]
    return pd.DataFrame({name: list(column) for name, column in zip(columns, values, strict=True)})


def first_bucket(connection: Connection, width_seconds: int) -> datetime | None:
    """Where stored history of a width begins (detection counts no exposure before it)."""
    return connection.execute(select(func.min(Bucket.bucket_start)).where(Bucket.width_seconds == width_seconds)).scalar()


ENTITY_DAY_COLUMNS = ["entity", "day", "first_published_at", "last_published_at"]


def entity_days(connection: Connection, start: datetime, end: datetime) -> pd.DataFrame:
    """Per entity and UTC day with articles published in [start, end): the first and last article's
    event time. What alert evaluation needs of the news, without reading every article: the first
    article after an event (delays) and the months each entity has news in (unlisted alerts per
    ticker-month)."""
    day = func.date(func.timezone("UTC", ArticleEntity.published_at)).label("day")
    statement = (
        select(ArticleEntity.entity, day, func.min(ArticleEntity.published_at), func.max(ArticleEntity.published_at))
        .where(ArticleEntity.published_at >= start, ArticleEntity.published_at < end)
        .group_by(ArticleEntity.entity, day)
        .order_by(ArticleEntity.entity, day)
    )
    frame = pd.DataFrame(connection.execute(statement).all(), columns=ENTITY_DAY_COLUMNS)
    frame["day"] = pd.to_datetime(frame["day"]).dt.tz_localize("UTC")
    for column in ("first_published_at", "last_published_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def stored_article_count(connection: Connection, article_ids: Sequence[str] | None = None) -> int:
    """How many articles are stored: all of them, or those of `article_ids` (a replay's progress)."""
    statement = select(func.count()).select_from(Article)
    if article_ids is not None:
        statement = statement.where(Article.id.in_(list(article_ids)))
    return int(connection.execute(statement).scalar_one())


def ingest_watermark(connection: Connection) -> tuple[datetime | None, datetime | None]:
    """(newest article event time, newest ingestion time), both None on an empty database."""
    newest_event = connection.execute(select(func.max(Article.published_at))).scalar()
    newest_ingest = connection.execute(select(func.max(Article.ingested_at))).scalar()
    return newest_event, newest_ingest


def data_clock(connection: Connection) -> tuple[datetime, bool]:
    """The present as the stored news knows it, and whether that is the wall clock: the newest
    article's event time, never later than now. On a live stream that is now; on a replayed or demo
    database it is the end of its news, so "the last 6 hours" means the last 6 hours of news."""
    newest, _ = ingest_watermark(connection)
    now = datetime.now(timezone.utc)
    if newest is None or newest >= now:
        return now, True
    return newest, False


def top_negative_articles(connection: Connection, entity: str, start: datetime, end: datetime, limit: int = 3) -> list[dict[str, Any]]:
    """The most adverse scored articles about `entity` published in [start, end), one per story
    (the larger of p_negative and the risk-event score ranks them): alert evidence."""
    adverse = func.greatest(ArticleScore.p_negative, ArticleScore.risk_score)
    ranked = (
        select(Article.id, Article.headline, Article.published_at, ArticleScore.p_negative, ArticleScore.risk_tags,
               adverse.label("adverse"),
               func.row_number().over(partition_by=func.coalesce(ArticleEntity.story_key, Article.id),
                                      order_by=(adverse.desc(), Article.id)).label("copy"))
        .join(ArticleEntity, ArticleEntity.article_id == Article.id)
        .join(ArticleScore, ArticleScore.article_id == Article.id)
        .where(ArticleEntity.entity == entity, ArticleEntity.published_at >= start, ArticleEntity.published_at < end)
        .subquery()
    )
    statement = select(ranked).where(ranked.c.copy == 1).order_by(ranked.c.adverse.desc(), ranked.c.id).limit(limit)
    return [
        {"id": row.id, "headline": row.headline, "p_negative": round(float(row.p_negative), 4),
         "risk_tags": list(row.risk_tags or []), "published_at": row.published_at.isoformat()}
        for row in connection.execute(statement)
    ]


ALERT_COLUMNS = [
    "id", "entity", "rule", "width_seconds", "bucket_start", "severity", "state", "value", "baseline",
    "fired_at", "resolved_at", "acked_at", "silenced", "evidence",
]


def alerts_frame(
    engine: Engine, entity: str | None = None, since: datetime | None = None, state: str | None = None,
    *, last_bucket: bool = False,
) -> pd.DataFrame:
    """Alerts, newest bucket first; `since` filters on the bucket that fired them (event time).
    `last_bucket` adds last_bucket_start, the latest bucket judged: where a picture's alert span ends."""
    names = [*ALERT_COLUMNS, "last_bucket_start"] if last_bucket else ALERT_COLUMNS
    statement = select(*(Alert.__table__.c[name] for name in names)).order_by(Alert.bucket_start.desc(), Alert.id.desc())
    if entity is not None:
        statement = statement.where(Alert.entity == entity)
    if since is not None:
        statement = statement.where(Alert.bucket_start >= since)
    if state is not None:
        statement = statement.where(Alert.state == state)
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(statement).all(), columns=names)
    for column in ("bucket_start", "fired_at", "resolved_at", "acked_at", *names[len(ALERT_COLUMNS):]):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
