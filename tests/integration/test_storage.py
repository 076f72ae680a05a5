"""Storage against the real PostgreSQL: migrations equal the models, writes are idempotent, queries return frames."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from consumers.batch_consumer import SinkUnavailable
from consumers.schema import parse_news
from pipeline.entities import EntityMatcher, load_entities
from pipeline.scoring.scorer import Scorer
from pipeline.series import SeriesConfig
from pipeline.worker import ArticleSink
from storage.engine import make_engine
from storage.migrate import alembic_config, current_revision, ensure_schema, head_revision, upgrade
from storage.models import Base
from storage.queries import articles_for_entity, stored_buckets
from storage.writes import ArticleRecord, EntityMention, WriteCounts, write_articles

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)


def record(index: int, *entities: str) -> ArticleRecord:
    return ArticleRecord(
        id=f"a{index}", published_at=T0 + timedelta(minutes=index), headline=f"headline {index}", body="",
        source="wire", url=None, lang="en",
        entities=tuple(EntityMention(entity, "tickers") for entity in entities) + (EntityMention("MARKET", "market"),),
    )


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    assert current_revision(engine) == head_revision()


def test_writes_are_idempotent(engine: Engine) -> None:
    batch = [record(1, "AAPL"), record(2, "MSFT", "AAPL"), record(1, "AAPL")]
    with engine.begin() as connection:
        first = write_articles(connection, batch)
    with engine.begin() as connection:
        second = write_articles(connection, batch)
    assert first == WriteCounts(articles_new=2, articles_seen_before=0, mentions_new=5)
    assert second == WriteCounts(articles_new=0, articles_seen_before=2, mentions_new=0)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM articles")).scalar_one() == 2
        assert connection.execute(sa.text("SELECT count(*) FROM article_entities")).scalar_one() == 5


def test_articles_for_entity_frame(engine: Engine) -> None:
    with engine.begin() as connection:
        write_articles(connection, [record(i, "AAPL" if i % 2 else "MSFT") for i in range(10)])
    frame = articles_for_entity(engine, "AAPL", T0, T0 + timedelta(minutes=6))
    assert list(frame["id"]) == ["a1", "a3", "a5"]
    assert str(frame["published_at"].dt.tz) == "UTC"
    assert frame["p_negative"].isna().all(), "not scored yet"
    empty = stored_buckets(engine, "AAPL", 300, T0, T0 + timedelta(hours=1))
    assert empty.empty and "emotion_index" in empty.columns


def test_sink_writes_one_batch_and_reports_an_unreachable_database(engine: Engine) -> None:
    matcher = EntityMatcher(load_entities(None), "MARKET")
    scorer = Scorer.load(None, "cpu", model="fast")
    items = [parse_news(b'{"published_at": "2026-03-02T14:30:00Z", "headline": "Apple and $NVDA rally"}')]
    sink = ArticleSink(engine, matcher, scorer, SeriesConfig())
    sink(items)
    sink(items)
    with engine.connect() as connection:
        entities = set(connection.execute(sa.text("SELECT entity FROM article_entities")).scalars())
        scored = connection.execute(sa.text("SELECT model_version FROM article_scores")).scalars().all()
        buckets = connection.execute(sa.text("SELECT entity, width_seconds, article_count FROM buckets")).all()
    assert entities == {"AAPL", "NVDA", "MARKET"}
    assert scored == [scorer.version]
    assert sorted(buckets) == sorted((e, w, 1) for e in entities for w in (300, 3600))
    assert sink.stats.scored == 0, "a batch seen before is not scored again"

    unreachable = make_engine("postgresql://finsent@127.0.0.1:1/finsent")
    with pytest.raises(SinkUnavailable):
        ArticleSink(unreachable, matcher, scorer, SeriesConfig())(items)


def test_worker_start_migrates_an_empty_database(empty_database: Engine) -> None:
    assert current_revision(empty_database) is None
    ensure_schema(empty_database)
    assert current_revision(empty_database) == head_revision()
    ensure_schema(empty_database)


def test_migration_0002_gives_existing_timesteps_an_empty_decay_state(empty_database: Engine) -> None:
    upgrade(empty_database, "0001")
    insert_old_bucket(empty_database)
    upgrade(empty_database)
    with empty_database.connect() as connection:
        state = connection.execute(sa.text("SELECT decay_sum, decay_weight FROM buckets")).one()
        default = connection.execute(sa.text(
            "SELECT column_default FROM information_schema.columns WHERE table_name = 'buckets' AND column_name = 'decay_sum'"
        )).scalar_one()
    assert tuple(state) == (0.0, 0.0)
    assert default is None, "the server default only fills old rows; writers give the state"


def test_migration_0006_renames_the_buckets_and_keeps_the_old_names_readable(empty_database: Engine) -> None:
    upgrade(empty_database, "0005")
    insert_old_bucket(empty_database, decay_state=True)
    upgrade(empty_database)
    with empty_database.connect() as connection:
        stored = connection.execute(sa.text("SELECT entity, article_count FROM buckets")).all()
        old_table = connection.execute(sa.text("SELECT entity, article_count FROM timesteps")).all()
        old_view = connection.execute(sa.text("SELECT entity, width FROM entity_timeseries")).all()
        new_view = connection.execute(sa.text("SELECT entity, width FROM entity_series")).all()
    assert [tuple(row) for row in stored] == [tuple(row) for row in old_table] == [("AAPL", 1)]
    assert [tuple(row) for row in old_view] == [tuple(row) for row in new_view] == [("AAPL", "5m")]
    config = alembic_config()
    with empty_database.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    with empty_database.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM timesteps")).scalar_one() == 1
        assert not sa.inspect(connection).has_table("buckets")


def insert_old_bucket(engine: Engine, *, decay_state: bool = False) -> None:
    """One AAPL bucket written into the table by its name before migration 0006 (with the decay state of 0002 on)."""
    columns = ("entity, width_seconds, bucket_start, model_version, article_count, mean_p_negative, mean_p_neutral,"
               " mean_p_positive, negative_share, mean_sentiment, emotion_index")
    values = "'AAPL', 300, '2026-03-02T14:00:00Z', 'm1', 1, 0.1, 0.2, 0.7, 0, 0.6, 0.6"
    if decay_state:
        columns, values = f"{columns}, decay_sum, decay_weight", f"{values}, 0.6, 1"
    with engine.begin() as connection:
        connection.execute(sa.text(f"INSERT INTO timesteps ({columns}) VALUES ({values})"))
