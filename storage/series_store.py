"""SQL side of the per-entity emotion series: locks, reads of scored mentions and decay state, upserts.

The arithmetic lives in pipeline/series.py; this module only moves rows. Everything runs on the
caller's connection, inside the worker's one transaction per batch, so the buckets commit (or
roll back) together with the articles and scores they were computed from.

Concurrency: every article counts towards the market-wide entity, so two workers routinely update
the same entity at once. Each recomputes buckets from what it can see; without a lock the later
commit would overwrite the other's counts with a recomputation that missed the other's (then
uncommitted) articles. `storage.locks.lock_entities` serialises writers per entity for the rest of the
transaction; under READ COMMITTED every statement after the lock sees what the previous holder
committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Integer,
    Table,
    TableValuedAlias,
    Text,
    and_,
    bindparam,
    case,
    column,
    func,
    select,
    true,
    tuple_,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import aliased
from sqlalchemy.types import TypeEngine

from storage.models import Article, ArticleEntity, ArticleScore, Bucket
from storage.writes import unnest_rows


@dataclass(frozen=True)
class BucketRow:
    """One stored bucket of one entity's series; see pipeline/series.py for the definitions."""

    entity: str
    width_seconds: int
    bucket_start: datetime
    model_version: str
    article_count: int
    mean_p_negative: float
    mean_p_neutral: float
    mean_p_positive: float
    negative_share: float
    mean_sentiment: float
    emotion_index: float
    decay_sum: float
    decay_weight: float
    story_count: float = 0.0
    adverse_count: float = 0.0
    risk_count: float = 0.0
    latest_published_at: datetime | None = None
    """The latest event time among the bucket's articles (None on rows from before migration 0007)."""


@dataclass(frozen=True)
class MentionColumns:
    """The scored articles about an entity in one range, as columns ordered by (published_at, article_id).

    micros: published_at in whole microseconds since the Unix epoch; probabilities: (n, 3) negative,
    neutral, positive; risk: risk-event score; story_weight: 0 for a copy of a story the entity had in
    the day before it, else 1 over the number of the entity's articles from the same source at the
    same instant (a feed dump counts as one story). Columns, not row objects: a live bucket re-reads
    its articles on every batch, and building one Python object per row was most of that cost.
    """

    micros: np.ndarray
    probabilities: np.ndarray
    risk: np.ndarray
    story_weight: np.ndarray

    @staticmethod
    def empty() -> MentionColumns:
        return MentionColumns(np.empty(0, np.int64), np.empty((0, 3)), np.empty(0), np.empty(0))

    def __len__(self) -> int:
        return len(self.micros)

    def between(self, since_micros: int, until_micros: int) -> MentionColumns:
        """The rows published in [since, until): a slice, since the rows are in time order."""
        first, last = np.searchsorted(self.micros, [since_micros, until_micros], side="left")
        return self.rows(int(first), int(last))

    def rows(self, first: int, last: int) -> MentionColumns:
        """Rows first..last-1 of every column (views, not copies)."""
        return MentionColumns(self.micros[first:last], self.probabilities[first:last], self.risk[first:last],
                              self.story_weight[first:last])


STORY_MEMORY = timedelta(days=1)
"""How long an earlier copy of a story makes a later one a copy (syndication happens within hours)."""

_MICROS = 1_000_000

DecayRow = tuple[datetime, float, float]
"""(bucket_end, decay_sum, decay_weight) of a stored bucket."""

_COLUMNS = [field.name for field in fields(BucketRow)]
_KEY = ["entity", "width_seconds", "bucket_start"]


def scored_mentions_in(
    connection: Connection, ranges: Sequence[tuple[str, datetime, datetime]], model_version: str
) -> list[MentionColumns]:
    """For each (entity, since, until) range: the entity's articles published in [since, until)
    that have a `model_version` score, in the order of `ranges`.

    One query for the whole batch (a round trip per entity cost more than the arithmetic, see
    bench/series.py). Each range's rows are ordered by (published_at, article_id), so the same
    data always gives the same float sums. A range must hold whole instants (bucket-aligned
    bounds do): an article's dump size counts the same-source articles at its instant in its range.
    """
    if not ranges:
        return []
    wanted = _unnest(
        position=(list(range(len(ranges))), Integer()),
        entity=([entity for entity, _, _ in ranges], Text()),
        since=([since for _, since, _ in ranges], DateTime(timezone=True)),
        until=([until for _, _, until in ranges], DateTime(timezone=True)),
    )
    earlier = aliased(ArticleEntity)
    copy_of_earlier = (
        select(earlier.article_id)
        .where(
            earlier.entity == ArticleEntity.entity,
            earlier.story_key == ArticleEntity.story_key,
            earlier.published_at >= ArticleEntity.published_at - STORY_MEMORY,
            tuple_(earlier.published_at, earlier.article_id) < tuple_(ArticleEntity.published_at, ArticleEntity.article_id),
        )
        .exists()
    )
    dump_size = func.count().over(partition_by=(wanted.c.position, Article.source, ArticleEntity.published_at))
    story_weight = case((copy_of_earlier, 0.0), else_=1.0 / dump_size)
    # extract(epoch) is an exact numeric on PostgreSQL 14+: whole microseconds, no float rounding.
    epoch_micros = sql_cast(func.extract("epoch", ArticleEntity.published_at) * _MICROS, BigInteger)
    statement = (
        select(wanted.c.position, epoch_micros, ArticleScore.p_negative, ArticleScore.p_neutral,
               ArticleScore.p_positive, ArticleScore.risk_score, story_weight)
        .select_from(wanted)
        .join(ArticleEntity, and_(ArticleEntity.entity == wanted.c.entity, ArticleEntity.published_at >= wanted.c.since,
                                  ArticleEntity.published_at < wanted.c.until))
        .join(ArticleScore, and_(ArticleScore.article_id == ArticleEntity.article_id,
                                 ArticleScore.model_version == model_version))
        .join(Article, Article.id == ArticleEntity.article_id)
        .order_by(wanted.c.position, ArticleEntity.published_at, ArticleEntity.article_id)
    )
    rows = connection.execute(statement).all()
    if not rows:
        return [MentionColumns.empty() for _ in ranges]
    positions, micros, negative, neutral, positive, risk, weight = zip(*rows, strict=True)
    columns = MentionColumns(
        np.fromiter(micros, np.int64, len(rows)),
        np.column_stack([np.fromiter(values, np.float64, len(rows)) for values in (negative, neutral, positive)]),
        np.fromiter(risk, np.float64, len(rows)),
        np.fromiter(weight, np.float64, len(rows)),
    )
    bounds = np.searchsorted(np.fromiter(positions, np.int64, len(rows)), np.arange(len(ranges) + 1), side="left")
    return [columns.rows(first, last) for first, last in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]


def decay_states_before(
    connection: Connection, starts: Sequence[tuple[str, int, datetime]], model_version: str
) -> dict[tuple[str, int, datetime], DecayRow]:
    """For each (entity, width, start): the decay state of its latest stored bucket starting before `start`.

    Keys without an earlier bucket are absent. Only buckets of `model_version` qualify: a series is
    fed by one model's scores, so a new model version starts its own decay history instead of
    continuing another model's.
    """
    wanted = _unnest(
        entity=([entity for entity, _, _ in starts], Text()),
        width=([width for _, width, _ in starts], Integer()),
        start=([start for _, _, start in starts], DateTime(timezone=True)),
    )
    latest = (
        select(Bucket.bucket_start, Bucket.decay_sum, Bucket.decay_weight)
        .where(
            Bucket.entity == wanted.c.entity,
            Bucket.width_seconds == wanted.c.width,
            Bucket.bucket_start < wanted.c.start,
            Bucket.model_version == model_version,
        )
        .order_by(Bucket.bucket_start.desc())
        .limit(1)
        .lateral("latest")
    )
    statement = select(wanted.c.entity, wanted.c.width, wanted.c.start, latest).select_from(wanted).join(latest, true())
    return {
        (entity, width, start): (bucket_start + timedelta(seconds=width), decay_sum, decay_weight)
        for entity, width, start, bucket_start, decay_sum, decay_weight in connection.execute(statement)
    }


def latest_buckets(connection: Connection, entities: Sequence[str], widths: Sequence[int]) -> dict[tuple[str, int], BucketRow]:
    """For each entity and width: its latest stored bucket, whatever its model version; absent where it has none."""
    wanted = _unnest(
        entity=([entity for entity in entities for _ in widths], Text()),
        width=([width for _ in entities for width in widths], Integer()),
    )
    table = cast(Table, Bucket.__table__)
    latest = (
        select(*(table.c[name] for name in _COLUMNS))
        .where(table.c.entity == wanted.c.entity, table.c.width_seconds == wanted.c.width)
        .order_by(table.c.bucket_start.desc())
        .limit(1)
        .lateral("latest")
    )
    statement = select(latest).select_from(wanted).join(latest, true())
    return {(row.entity, row.width_seconds): BucketRow(**row._asdict()) for row in connection.execute(statement)}


def _unnest(**arrays: tuple[list[Any], TypeEngine[Any]]) -> TableValuedAlias:
    """unnest(:a, :b, ...) AS wanted(a, b, ...): one typed array parameter per column."""
    parameters = [bindparam(f"{name}_values", values, type_=ARRAY(kind)) for name, (values, kind) in arrays.items()]
    columns = [column(name, kind) for name, (_, kind) in arrays.items()]
    return func.unnest(*parameters).table_valued(*columns).render_derived(name="wanted")


def upsert_buckets(connection: Connection, rows: Sequence[BucketRow]) -> int:
    """Insert or overwrite buckets in one statement; returns how many rows were new or changed.

    A bucket recomputed to the same values (a replayed batch) is left untouched, so `updated_at`
    says when a bucket last changed and replays cost no table writes.
    """
    unique = list({(row.entity, row.width_seconds, row.bucket_start): row for row in rows}.values())
    if not unique:
        return 0
    table = cast(Table, Bucket.__table__)
    columns = {name: [getattr(row, name) for row in unique] for name in _COLUMNS}
    inserted = insert(table).from_select(_COLUMNS, unnest_rows(table, columns))
    values = [name for name in _COLUMNS if name not in _KEY]
    statement = inserted.on_conflict_do_update(
        index_elements=[table.c[name] for name in _KEY],
        set_={**{name: inserted.excluded[name] for name in values}, "updated_at": func.now()},
        where=tuple_(*(table.c[name] for name in values)).is_distinct_from(
            tuple_(*(inserted.excluded[name] for name in values))
        ),
    ).returning(table.c.entity)
    return len(connection.execute(statement).all())

