"""Idempotent batch writes. Every insert is ON CONFLICT DO NOTHING on the natural key, so a batch
written twice (replay, crash before the offset commit, rebalance) leaves the tables as written once.

Same id, different content: the first write wins for the whole article. Its text, time, source,
entity mentions and score stay as first stored; a later message with that id (in the same batch
or any later one) changes nothing. Mentions are inserted only with the article row they belong
to, in the same transaction, so an article never gains another message's entities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BindParameter, Connection, Select, Table, Text, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, insert

from storage.models import Article, ArticleEntity, ArticleScore


@dataclass(frozen=True)
class EntityMention:
    entity: str
    matched_by: str
    """How the entity was found: tickers (given by the producer), cashtag, name or market."""


@dataclass(frozen=True)
class ArticleRecord:
    id: str
    published_at: datetime
    headline: str
    body: str
    source: str | None
    url: str | None
    lang: str | None
    entities: tuple[EntityMention, ...]
    story_key: str | None = None
    """Copies of one story share it (the worker derives it from the headline); None: a story of its own."""

    @property
    def text(self) -> str:
        """Headline and body as one text, the unit the model scores (as `NewsItem.text`)."""
        return "\n".join(part for part in (self.headline, self.body) if part)


@dataclass(frozen=True)
class WriteCounts:
    articles_new: int
    articles_seen_before: int
    mentions_new: int


def write_articles(connection: Connection, records: Sequence[ArticleRecord]) -> WriteCounts:
    """Insert articles and their entity mentions inside the caller's transaction (first write wins)."""
    unique = first_per_id(records)
    if not unique:
        return WriteCounts(0, 0, 0)
    inserted = inserted_keys(
        connection,
        cast(Table, Article.__table__),
        {
            "id": [r.id for r in unique],
            "published_at": [r.published_at for r in unique],
            "headline": [r.headline for r in unique],
            "body": [r.body for r in unique],
            "source": [r.source for r in unique],
            "url": [r.url for r in unique],
            "lang": [r.lang for r in unique],
        },
    )
    new_ids = {key[0] for key in inserted}
    mentions = [
        (record, mention)
        for record in unique
        if record.id in new_ids
        for mention in {m.entity: m for m in record.entities}.values()
    ]
    mentions_new = insert_ignoring_duplicates(
        connection,
        cast(Table, ArticleEntity.__table__),
        {
            "article_id": [record.id for record, _ in mentions],
            "entity": [mention.entity for _, mention in mentions],
            "matched_by": [mention.matched_by for _, mention in mentions],
            "published_at": [record.published_at for record, _ in mentions],
            "story_key": [record.story_key for record, _ in mentions],
        },
    )
    return WriteCounts(len(new_ids), len(unique) - len(new_ids), mentions_new)


def first_per_id(records: Sequence[ArticleRecord]) -> list[ArticleRecord]:
    """One record per article id, the first one seen (first write wins within a batch too)."""
    unique: dict[str, ArticleRecord] = {}
    for record in records:
        unique.setdefault(record.id, record)
    return list(unique.values())


def stored_articles(connection: Connection, article_ids: Sequence[str]) -> dict[str, ArticleRecord]:
    """The articles of these ids that are already stored, as stored (text, time and mentions)."""
    if not article_ids:
        return {}
    rows = connection.execute(select(Article).where(Article.id.in_(list(article_ids)))).all()
    mentions: dict[str, list[EntityMention]] = {}
    story_keys: dict[str, str | None] = {}
    found = [row.id for row in rows]
    if found:
        statement = select(ArticleEntity.article_id, ArticleEntity.entity, ArticleEntity.matched_by,
                           ArticleEntity.story_key).where(ArticleEntity.article_id.in_(found))
        for article_id, entity, matched_by, key in connection.execute(statement):
            mentions.setdefault(article_id, []).append(EntityMention(entity, matched_by))
            story_keys[article_id] = key
    return {
        row.id: ArticleRecord(
            row.id, row.published_at, row.headline, row.body, row.source, row.url, row.lang,
            tuple(sorted(mentions.get(row.id, []), key=lambda mention: mention.entity)), story_keys.get(row.id),
        )
        for row in rows
    }


def insert_ignoring_duplicates(connection: Connection, table: Table, columns: dict[str, list[Any]]) -> int:
    """INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING; returns the number of new rows."""
    return len(inserted_keys(connection, table, columns))


def inserted_keys(connection: Connection, table: Table, columns: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    """INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING; returns the primary keys inserted.

    One array parameter per column keeps the statement short and identical for every batch size;
    a multi-row VALUES list with thousands of placeholders costs psycopg a Python-side parse on
    every batch (measured: about a quarter of the worker's time, see bench/ingest.py).
    """
    if not next(iter(columns.values()), None):
        return []
    statement = (
        insert(table)
        .from_select(list(columns), unnest_rows(table, columns))
        .on_conflict_do_nothing(index_elements=list(table.primary_key.columns))
        .returning(*table.primary_key.columns)
    )
    return [tuple(row) for row in connection.execute(statement).all()]


@dataclass(frozen=True)
class ScoreRecord:
    article_id: str
    model_version: str
    p_negative: float
    p_neutral: float
    p_positive: float
    label: str
    chunks: int
    risk_score: float = 0.0
    risk_tags: tuple[str, ...] = ()

    @property
    def sentiment(self) -> float:
        return self.p_positive - self.p_negative


_TAG_SEPARATOR = ","


def write_scores(connection: Connection, records: Sequence[ScoreRecord]) -> int:
    """Insert scores (one per article and model version); an existing score is kept as it is."""
    unique = list({(r.article_id, r.model_version): r for r in records}.values())
    if not unique:
        return 0
    table = cast(Table, ArticleScore.__table__)
    columns: dict[str, list[Any]] = {
            "article_id": [r.article_id for r in unique],
            "model_version": [r.model_version for r in unique],
            "p_negative": [r.p_negative for r in unique],
            "p_neutral": [r.p_neutral for r in unique],
            "p_positive": [r.p_positive for r in unique],
            "sentiment": [r.sentiment for r in unique],
            "label": [r.label for r in unique],
            "chunks": [r.chunks for r in unique],
            "risk_score": [r.risk_score for r in unique],
    }
    # unnest() flattens an array of arrays: the tags travel as one text per row, split back in SQL.
    tags = bindparam("risk_tags_values", [_TAG_SEPARATOR.join(r.risk_tags) for r in unique], type_=ARRAY(Text()))
    rows = unnest_rows(table, columns, extra={"risk_tags": tags}).subquery("scored")
    statement = (
        insert(table)
        .from_select([*columns, "risk_tags"],
                     select(*[rows.c[name] for name in columns], func.string_to_array(rows.c.risk_tags, _TAG_SEPARATOR)))
        .on_conflict_do_nothing(index_elements=list(table.primary_key.columns))
        .returning(*table.primary_key.columns)
    )
    return len(connection.execute(statement).all())


def scored_article_ids(connection: Connection, article_ids: Sequence[str], model_version: str) -> set[str]:
    """Which of these articles already have a score from this model (a replay need not score them again)."""
    if not article_ids:
        return set()
    statement = select(ArticleScore.article_id).where(
        ArticleScore.model_version == model_version, ArticleScore.article_id.in_(list(article_ids))
    )
    return set(connection.execute(statement).scalars())


def unnest_rows(table: Table, columns: dict[str, list[Any]], extra: dict[str, BindParameter[Any]] | None = None) -> Select[Any]:
    """SELECT * FROM unnest(:a_values, :b_values, ...): rows from one typed array per column
    (`extra`: further array parameters, typed by the caller)."""
    arrays = [bindparam(f"{name}_values", values, type_=ARRAY(table.c[name].type)) for name, values in columns.items()]
    arrays += list((extra or {}).values())
    return select(func.unnest(*arrays).table_valued(*columns, *(extra or {})).render_derived())
