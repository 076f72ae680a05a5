"""Idempotent batch writes. Every insert is ON CONFLICT DO NOTHING on the natural key, so a batch
written twice (replay, crash before the offset commit, rebalance) leaves the tables as written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert

from storage.models import Article, ArticleEntity


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


@dataclass(frozen=True)
class WriteCounts:
    articles_new: int
    articles_seen_before: int
    mentions_new: int


def write_articles(connection: Connection, records: Sequence[ArticleRecord]) -> WriteCounts:
    """Insert articles and their entity mentions inside the caller's transaction."""
    unique = list({record.id: record for record in records}.values())
    if not unique:
        return WriteCounts(0, 0, 0)
    article_rows = [
        {
            "id": record.id,
            "published_at": record.published_at,
            "headline": record.headline,
            "body": record.body,
            "source": record.source,
            "url": record.url,
            "lang": record.lang,
        }
        for record in unique
    ]
    inserted = connection.execute(
        insert(Article).on_conflict_do_nothing(index_elements=[Article.id]).returning(Article.id),
        article_rows,
    ).scalars().all()
    mention_rows = [
        {
            "article_id": record.id,
            "entity": mention.entity,
            "matched_by": mention.matched_by,
            "published_at": record.published_at,
        }
        for record in unique
        for mention in {m.entity: m for m in record.entities}.values()
    ]
    mentions_new = 0
    if mention_rows:
        mentions_new = len(
            connection.execute(
                insert(ArticleEntity)
                .on_conflict_do_nothing(index_elements=[ArticleEntity.article_id, ArticleEntity.entity])
                .returning(ArticleEntity.article_id),
                mention_rows,
            ).scalars().all()
        )
    return WriteCounts(len(inserted), len(unique) - len(inserted), mentions_new)
