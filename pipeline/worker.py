"""Worker glue: Kafka batch consumer -> entities -> one PostgreSQL transaction per batch -> commit.

The scoring step joins the same transaction when it lands (see the scoring issue).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from kafka import KafkaProducer, TopicPartition

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, InternalError, OperationalError, ProgrammingError

from consumers.batch_consumer import BatchConsumer, BatchReport, RetryPolicy, SinkUnavailable
from consumers.dead_letter import DeadLetterPublisher
from consumers.kafka_clients import KafkaOptions, create_consumer, create_producer, ensure_topics
from consumers.schema import NewsItem
from pipeline.config import Settings
from pipeline.database import Database, open_database
from pipeline.entities import EntityMatcher, load_entities
from storage.migrate import ensure_schema
from storage.writes import ArticleRecord, write_articles

log = logging.getLogger(__name__)

# Errors that mean "the database is not usable right now", not "this data is bad".
_INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError, InternalError, ProgrammingError)


class ArticleSink:
    """Writes a validated batch in ONE transaction; raises SinkUnavailable when the database is down."""

    def __init__(self, engine: Engine, matcher: EntityMatcher) -> None:
        self._engine = engine
        self._matcher = matcher

    def __call__(self, items: Sequence[NewsItem]) -> None:
        records = [self.record_of(item) for item in items]
        try:
            with self._engine.begin() as connection:
                write_articles(connection, records)
        except _INFRASTRUCTURE_ERRORS as error:
            raise SinkUnavailable(f"database unavailable: {_first_line(error)}") from error
        except DBAPIError as error:
            if error.connection_invalidated:
                raise SinkUnavailable(f"database connection lost: {_first_line(error)}") from error
            raise

    def record_of(self, item: NewsItem) -> ArticleRecord:
        return ArticleRecord(
            id=item.id,
            published_at=item.published_at,
            headline=item.headline,
            body=item.body,
            source=item.source,
            url=item.url,
            lang=item.lang,
            entities=self._matcher.mentions(item),
        )


def kafka_options(settings: Settings, client_id: str = "finsent-worker") -> KafkaOptions:
    return KafkaOptions(
        bootstrap_servers=settings.kafka_bootstrap,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        client_id=client_id,
        bootstrap_timeout_ms=settings.kafka_connect_timeout_ms,
    )


class Worker:
    """One scoring worker process; run several with the same consumer group to scale out."""

    def __init__(self, settings: Settings, *, stop: threading.Event | None = None, retry: RetryPolicy = RetryPolicy()) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self._retry = retry
        self._database: Database | None = None
        self._consumer: BatchConsumer | None = None
        self._producer: KafkaProducer | None = None

    def start(self) -> None:
        """Connect everything and check it works; user mistakes surface here as UserError."""
        settings = self.settings
        matcher = EntityMatcher(load_entities(settings.entities_file), settings.market_entity)
        options = kafka_options(settings)
        ensure_topics(options, [settings.topic_news, settings.topic_dead_letter], settings.topic_partitions)
        self._database = open_database(settings)
        ensure_schema(self._database.engine)
        self._producer = create_producer(options)
        consumer = create_consumer(options, settings.consumer_group, max_poll_records=settings.batch_size)
        self._consumer = BatchConsumer(
            consumer,
            settings.topic_news,
            ArticleSink(self._database.engine, matcher),
            DeadLetterPublisher(self._producer, settings.topic_dead_letter),
            batch_size=settings.batch_size,
            max_wait_ms=settings.batch_max_wait_ms,
            max_message_bytes=settings.max_message_bytes,
            retry=self._retry,
            stop=self.stop,
            on_batch=_log_batch,
        )
        self._consumer.subscribe()

    def run(self) -> None:
        if self._consumer is None:
            self.start()
        assert self._consumer is not None
        try:
            self._consumer.run()
        finally:
            self.close()

    def assignment(self) -> set[TopicPartition]:
        return self._consumer.assignment() if self._consumer is not None else set()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
        if self._database is not None:
            self._database.close()
            self._database = None


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM/SIGINT ask the loop to stop after the current step; an unfinished batch is not committed."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("stop_requested", extra={"kv": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _log_batch(report: BatchReport) -> None:
    log.info(
        "batch",
        extra={
            "kv": {
                "consumed": report.consumed,
                "stored": report.stored,
                "dead_lettered": report.dead_lettered,
                "retries": report.retries,
                "committed": report.committed,
                "duration_ms": round(report.duration_s * 1000, 1),
                "lag": report.lag if report.lag is not None else "unknown",
            }
        },
    )


def _first_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]
