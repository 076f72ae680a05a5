"""Worker glue: Kafka batch -> entities -> model scores -> ONE PostgreSQL transaction (articles,
mentions, scores, buckets) -> offset commit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kafka import KafkaProducer, TopicPartition
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, InternalError, OperationalError, ProgrammingError

from consumers.batch_consumer import BatchConsumer, BatchReport, RetryPolicy, SinkUnavailable
from consumers.dead_letter import DeadLetterPublisher, producer_max_request_size
from consumers.kafka_clients import create_consumer, create_producer, ensure_topics
from consumers.ordered_stages import Lanes
from consumers.schema import NewsItem
from pipeline.config import Settings
from pipeline.database import Database, open_database
from pipeline.entities import EntityMatcher, load_entities
from pipeline.kafka_settings import kafka_options
from pipeline.scoring.lanes import share_the_gil
from pipeline.scoring.risk_events import RiskTagger, RiskTags
from pipeline.scoring.scorer import ArticleScore, EncodedTexts, Scorer
from pipeline.series import SeriesConfig, update_series
from pipeline.stories import story_key
from storage.migrate import ensure_schema
from storage.writes import (
    ArticleRecord,
    ScoreRecord,
    first_per_id,
    scored_article_ids,
    stored_articles,
    write_articles,
    write_scores,
)

if TYPE_CHECKING:
    from pipeline.metrics import Metrics, WorkerMetrics

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 50
"""How long the broker may hold a fetch open waiting for data (kafka-python's default is 500 ms).
On Tansu a quiet topic's news waited up to that long: p50 130 ms to reach the worker at 500 ms,
7 ms at 50 ms; the price is a few empty fetches a second while the topic is idle."""

# Errors that mean "the database is not usable right now", not "this data is bad".
_INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError, InternalError, ProgrammingError)


@dataclass
class SinkStats:
    """What the last batch cost, for the per-batch log line and metrics."""

    scored: int = 0
    scoring_s: float = 0.0
    writing_s: float = 0.0
    buckets: int = 0

    def plus(self, other: SinkStats) -> SinkStats:
        return SinkStats(self.scored + other.scored, self.scoring_s + other.scoring_s,
                         self.writing_s + other.writing_s, self.buckets + other.buckets)


@dataclass(frozen=True)
class PreparedBatch:
    """A batch ready for the model: its records as they will be stored, and the tokens of those to score."""

    version: str
    records: list[ArticleRecord]
    to_score: list[ArticleRecord]
    touched: list[ArticleRecord]
    encoded: EncodedTexts
    risks: list[RiskTags]


@dataclass(frozen=True)
class ScoredBatch:
    prepared: PreparedBatch
    scores: list[ArticleScore]
    scoring_s: float


class ArticleSink:
    """Scores a validated batch (sentiment and risk-event tags), then writes articles, mentions,
    scores and buckets in ONE transaction; raises SinkUnavailable when the database is down.

    Scoring happens before the transaction opens (no locks held during inference); articles that
    already have a score from this model (a replay, a batch retried after a crash) are not scored
    again. Its three `stages` let the consumer score one batch while it writes the previous one,
    and score as many batches at once as the scorer has lanes; two batches in flight with the
    same id are harmless, because every write is idempotent and the first write wins.
    """

    def __init__(self, engine: Engine, matcher: EntityMatcher, scorer: Scorer, buckets: SeriesConfig) -> None:
        self._engine = engine
        self._matcher = matcher
        self._scorer = scorer
        self._buckets = buckets
        self._risk = RiskTagger()
        self.stats = SinkStats()
        """The last call's figures."""
        self._since_taken = SinkStats()

    @property
    def stages(self) -> Sequence[Callable[[Any], Any] | Lanes[Any]]:
        """The steps one at a time, for the consumer to overlap across batches (consumers/ordered_stages.py):
        entities, stored state and tokens; the model, in the scorer's lanes; the transaction."""
        lanes = self._scorer.lanes
        return (self.prepare, Lanes(self.score, lanes.count, lanes.enter), self.write)

    def __call__(self, items: Sequence[NewsItem]) -> None:
        self.write(self.score(self.prepare(items)))

    def prepare(self, items: Sequence[NewsItem]) -> PreparedBatch:
        """Entity mentions, what the database already holds for these ids, and the tokens to score."""
        records = first_per_id([self.record_of(item) for item in items])
        version = self._scorer.version
        with _database_errors(), self._engine.connect() as connection:
            ids = [record.id for record in records]
            already_scored = scored_article_ids(connection, ids, version)
            stored = stored_articles(connection, ids)
        # First write wins (storage.writes): an id already stored is scored and bucketed as stored.
        records = [stored.get(record.id, record) for record in records]
        to_score = [record for record in records if record.id not in already_scored]
        touched = [record for record in records if record.id not in stored or record.id not in already_scored]
        texts = [record.text for record in to_score]
        return PreparedBatch(version, records, to_score, touched, self._scorer.encode(texts),
                             [self._risk.tag(text) for text in texts])

    def score(self, prepared: PreparedBatch) -> ScoredBatch:
        started = time.perf_counter()
        scores = self._scorer.score_encoded(prepared.encoded)
        return ScoredBatch(prepared, scores, time.perf_counter() - started)

    def write(self, scored: ScoredBatch) -> None:
        """ONE transaction: articles, mentions, scores and buckets; SinkUnavailable while the database is down."""
        prepared = scored.prepared
        started = time.perf_counter()
        with _database_errors(), self._engine.begin() as connection:
            write_articles(connection, prepared.records)
            write_scores(connection, [
                _score_record(record.id, score, prepared.version, risk)
                for record, score, risk in zip(prepared.to_score, scored.scores, prepared.risks, strict=True)
            ])
            bucket_rows = update_series(connection, _times_per_entity(prepared.touched), prepared.version, self._buckets)
        self.stats = SinkStats(len(prepared.to_score), scored.scoring_s, time.perf_counter() - started, bucket_rows)
        self._since_taken = self._since_taken.plus(self.stats)

    def take_stats(self) -> SinkStats:
        """The figures summed since the last take (the consumer takes them right after each batch's
        delivery): one batch reaches the sink several times when it is split to isolate a refused
        message, and not at all when every message was rejected."""
        taken, self._since_taken = self._since_taken, SinkStats()
        return taken

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
            story_key=story_key(item.headline or item.body[:200]),
        )


class Worker:
    """One scoring worker process; run several with the same consumer group to scale out."""

    def __init__(self, settings: Settings, *, stop: threading.Event | None = None, retry: RetryPolicy = RetryPolicy(),
                 metrics: Metrics | None = None, scorer: Scorer | None = None, overlap: bool = True) -> None:
        """`scorer` replaces the one the settings describe, and `overlap=False` runs one batch at a time
        (bench/ingest.py measures the worker around other models, and against its unoverlapped self)."""
        self.settings = settings
        self._scorer = scorer
        self._overlap = overlap
        self.stop = stop or threading.Event()
        self._retry = retry
        self._metrics: WorkerMetrics | None = metrics.worker if metrics is not None else None
        self._database: Database | None = None
        self._consumer: BatchConsumer | None = None
        self._producer: KafkaProducer | None = None
        self.sink: ArticleSink | None = None

    def start(self) -> None:
        """Connect everything and check it works; user mistakes surface here as UserError."""
        settings = self.settings
        matcher = EntityMatcher(load_entities(settings.entities_file), settings.market_entity)
        options = kafka_options(settings)
        ensure_topics(options, [settings.topic_news, settings.topic_dead_letter], settings.topic_partitions)
        self._database = open_database(settings)
        ensure_schema(self._database.engine)
        scorer = self._scorer or load_scorer(settings)
        share_the_gil()  # the model's lanes take the GIL back between operations (pipeline/scoring/lanes.py)
        log.info("model_loaded", extra={"kv": {"version": scorer.version, "device": str(scorer.device), "precision": scorer.precision,
                                               "chosen": scorer.choice.reason if scorer.choice else ""}})
        if self._metrics is not None:
            self._metrics.model_loaded(scorer.version, str(scorer.device))
        self.sink = ArticleSink(
            self._database.engine, matcher, scorer, SeriesConfig(settings.bucket_widths, settings.emotion_half_life)
        )
        self._producer = create_producer(options, max_request_size=producer_max_request_size(settings.dead_letter_max_bytes))
        consumer = create_consumer(options, settings.consumer_group, max_poll_records=settings.batch_size,
                                   fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
        self._consumer = BatchConsumer(
            consumer,
            settings.topic_news,
            self.sink,
            DeadLetterPublisher(self._producer, settings.topic_dead_letter, max_letter_bytes=settings.dead_letter_max_bytes),
            batch_size=settings.batch_size,
            batch_tokens=settings.batch_tokens,
            max_wait_ms=settings.batch_max_wait_ms,
            max_message_bytes=settings.max_message_bytes,
            time_window=settings.time_window,
            retry=self._retry,
            stop=self.stop,
            on_batch=self._log_batch,
            sink_stats=self.sink.take_stats,
            overlap=self._overlap,
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

    def _log_batch(self, report: BatchReport) -> None:
        """One structured line and the metrics per batch; lag is from the fetch high-water mark."""
        stats = report.sink_stats if isinstance(report.sink_stats, SinkStats) else SinkStats()
        if self._metrics is not None:
            self._metrics.record_batch(report, stats.scored, stats.scoring_s)
        log.info(
            "batch",
            extra={
                "kv": {
                    "consumed": report.consumed,
                    "stored": report.stored,
                    "scored": stats.scored,
                    "dead_lettered": report.dead_lettered,
                    "retries": report.retries,
                    "committed": report.committed,
                    "duration_ms": round(report.duration_s * 1000, 1),
                    "scoring_ms": round(stats.scoring_s * 1000, 1),
                    "writing_ms": round(stats.writing_s * 1000, 1),
                    "scored_per_s": round(stats.scored / stats.scoring_s, 1) if stats.scored and stats.scoring_s > 0 else 0,
                    "buckets": stats.buckets,
                    "lag": report.lag if report.lag is not None else "unknown",
                }
            },
        )

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


def load_scorer(settings: Settings) -> Scorer:
    return Scorer.load(
        settings.model_path,
        settings.model_device,
        threads=settings.torch_threads or None,
        lanes=settings.model_lanes,
        quantize_int8=settings.model_quantize == "int8",
        precision=settings.model_precision,
        label_names=settings.model_labels or None,
        data_dir=settings.data_dir,
        model=settings.model,
    )


def _score_record(article_id: str, score: ArticleScore, version: str, risk: RiskTags) -> ScoreRecord:
    return ScoreRecord(article_id, version, score.p_negative, score.p_neutral, score.p_positive, score.label, score.chunks,
                       risk.score, risk.tags)


def _times_per_entity(records: Sequence[ArticleRecord]) -> dict[str, list[datetime]]:
    """Entity -> event times of the batch's articles about it: the buckets to recompute."""
    times: dict[str, list[datetime]] = {}
    for record in records:
        for mention in record.entities:
            times.setdefault(mention.entity, []).append(record.published_at)
    return times


@contextmanager
def _database_errors() -> Iterator[None]:
    """Database failures as the consumer understands them: SinkUnavailable (retried) when the
    database is not usable right now; anything else is left to narrow down to a message."""
    try:
        yield
    except _INFRASTRUCTURE_ERRORS as error:
        raise SinkUnavailable(f"database unavailable: {_first_line(error)}") from error
    except DBAPIError as error:
        if error.connection_invalidated:
            raise SinkUnavailable(f"database connection lost: {_first_line(error)}") from error
        raise


def _first_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]
