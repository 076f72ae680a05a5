"""Ingest throughput: Kafka -> finsent worker -> PostgreSQL, next to a plain kafka-python loop,
the worker without its model, and the model alone on the same articles; then produce-to-stored
latency at three loads.

What it measures
    N realistic headline messages (JSON, 4 partitions by default; a fifth carry a body of 2-4
    sentences) are produced once to a fresh topic. Then several consumers, each in its own consumer
    group, drain that same backlog:

    1. the baseline: a plain kafka-python loop (KafkaConsumer in a group, poll until all N are
       read, json.loads each value, a manual commit per poll of up to --batch-size records);
    2. the finsent worker without the model: everything the worker does (validation, entities,
       tokenizing, the transaction, the offset commit) except the model's forward pass, which
       returns neutral at no cost; the rate Kafka + PostgreSQL + the worker's own code sustain;
    3. the finsent worker with its stages not overlapped (one batch at a time, start to finish: how
       it ran before the stages were overlapped), then
       the finsent worker (`pipeline.worker.Worker` in a thread, with the --model: it validates
       each message, finds entity mentions, scores the articles, writes articles, mentions,
       scores and buckets in one transaction per batch, then commits the offsets; its stages
       overlap), timed by polling `SELECT count(*) FROM articles`;
    4. the model alone: the worker's own Scorer (same model, threads, precision) scoring the same
       N articles in batches of --batch-size, in this process after the worker stopped: the
       ceiling the worker could reach if Kafka and PostgreSQL cost nothing. The last line, the
       worker's steady rate over this one, is `worker/bare-model throughput ratio: R`. Beside it,
       on the first 2,000 articles, in batches of 32 (live) and 256 (backlog): the model with its
       forward passes cut by their measured cost (pipeline/scoring/packing.py) against passes
       filled to the token budget, as the Scorer packed before.

    With --processes 1,2 it first also drains the backlog with `finsent worker --processes N` (the
    CLI, in a subprocess, its own group) for each N: the same work split over N processes.

    Then, with the worker still running at the end of the backlog, it produces fresh messages at
    a steady pace of 25%, 50% and 90% (--loads) of the rate the worker just sustained, for
    --latency-seconds each, from a producer in a process of its own (as a news feed is), and
    reports p50 / p95 of produce -> stored: from the producer's send
    to the article's `ingested_at` (PostgreSQL's now() inside the batch's transaction, which
    commits writing_ms later; same host, same clock).

    Where the worker's time goes comes from its per-batch log line: scoring_ms (the model) and
    writing_ms (the transaction: articles, mentions, scores, buckets), summed over the drain and
    shown as how busy each was; with the stages overlapped the model should be busy nearly all
    the time.

    For each it prints
    - msg/s (steady): records after the first sighting / (last sighting - first sighting), i.e.
      without the consumer-group join;
    - msg/s (incl. join): N / (last sighting - consumer subscribed);
    - time to first: consumer subscribed -> first record (baseline) or first stored row (worker),
      mostly the group join (about half of the session timeout, 6 s here).
    The overhead ratio compares the steady rates. Everything (this process, the broker and
    PostgreSQL) shares the machine's cores, as a single-host deployment would.
    It also prints the worker's per-batch latency (validate -> transaction -> offset commit, from
    its "batch" log line; poll time excluded) and the peak RSS of this Python process (the broker
    and PostgreSQL run as separate processes and are not included).

How to run
    .venv/bin/python bench/ingest.py [--messages 20000] [--partitions 4] [--batch-size 256]
        [--model auto|fast|accurate|DIR] [--loads 0.25,0.5,0.9] [--latency-seconds 15] [--processes 1,2]

    By default it starts the embedded broker (Tansu) and an embedded PostgreSQL in a temporary
    directory and removes both afterwards. `--kafka host:port` / `--database-url URL` (or
    FINSENT_BENCH_KAFKA / FINSENT_BENCH_DATABASE_URL) use external ones instead: the run's topics
    and rows are deleted at the end; use a scratch database, because the worker's progress is read
    from the growth of `articles`, so nothing else may write to it during the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
import torch
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from progress_display import Progress
from progress_display import progress as shared_progress
from sqlalchemy import Engine

from consumers.embedded_broker import EmbeddedBroker
from consumers.kafka_clients import KafkaOptions, create_admin, create_producer, ensure_topics
from consumers.schema import NewsItem, parse_news
from pipeline.config import Settings
from pipeline.counts import positive_int
from pipeline.entities import KnownEntity, load_entities
from pipeline.logfmt import configure_logging
from pipeline.scoring.lanes import ModelLanes
from pipeline.scoring.mpnet_base import share_installed_base
from pipeline.scoring.packing import ForwardCost, MeasuredForwardCost
from pipeline.scoring.scorer import ArticleScore, EncodedTexts, Scorer
from pipeline.worker import Worker, load_scorer
from storage.embedded import EmbeddedPostgres
from storage.engine import make_engine, redacted
from storage.migrate import upgrade

# Real Kafka's minimum session timeout; a group join on Tansu takes about half of it.
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000
PROGRESS_INTERVAL_S = 0.05
STALL_TIMEOUT_S = 60.0
"""Give up when no new record or row arrived for this long (a hang guard, not a measurement)."""

SOURCES = ("Reuters", "Bloomberg", "Dow Jones Newswires", "MarketWatch", "Financial Times", "Business Wire")
MOVES = ("rise", "fall", "jump", "slide", "surge", "tumble", "edge higher", "edge lower")
VERDICTS = ("beat", "miss", "match", "top", "trail")
SEGMENTS = ("cloud", "advertising", "data-centre", "consumer", "wealth-management", "subscription")
HEADLINE_TEMPLATES = (
    "{name} shares {move} {pct}% after quarterly results {verdict} estimates",
    "{name} to cut {jobs:,} jobs as demand slows in its {segment} unit",
    "{name} raises full-year guidance on strong {segment} sales",
    "Analysts downgrade {name} to sell, citing margin pressure",
    "{name} announces ${amount} billion share buyback",
    "Regulators open probe into {name} accounting practices",
    "{name} CEO to step down at year end; board begins search for successor",
    "{name} agrees to buy rival in ${amount} billion deal",
)
MARKET_HEADLINES = (
    "Stocks {move} as investors weigh the Fed's rate outlook",
    "Treasury yields {move} after hotter-than-expected inflation data",
    "Oil prices {move} on supply worries; energy shares mixed",
)
BODY_SENTENCES = (
    "The company said the change reflects {segment} demand that has shifted faster than expected.",
    "Shares of {name} have {move_past} roughly {pct}% so far this year, against a flat benchmark.",
    "Analysts polled before the report had expected a smaller move in margins.",
    "Management will discuss the outlook on a call with investors later on Tuesday.",
    "Traders also watched ${ticker} options, where volume ran at twice the daily average.",
)


class BenchError(Exception):
    """The benchmark could not finish; the message says what was seen and what to check."""


@dataclass(frozen=True)
class BenchOptions:
    messages: int
    partitions: int
    batch_size: int
    kafka: str
    database_url: str
    model: str = "auto"
    loads: tuple[float, ...] = (0.25, 0.5, 0.9)
    latency_seconds: float = 15.0
    processes: tuple[int, ...] = ()
    threads: int = 0
    """The worker's torch threads (FINSENT_TORCH_THREADS; 0: every core). The bare model always uses every core."""


@dataclass(frozen=True)
class Infrastructure:
    bootstrap: str
    database_url: str
    engine: Engine
    """For the benchmark's own queries (progress, counts, clean-up); the worker opens its own."""
    broker_label: str
    database_label: str
    external_broker: bool
    external_database: bool


@dataclass(frozen=True)
class RunNames:
    """Topic, group and id names unique to one run, so repeated runs on external services never mix."""

    run_id: str

    @property
    def topic(self) -> str:
        return f"bench-news-{self.run_id}"

    @property
    def dead_letter(self) -> str:
        return f"bench-news-{self.run_id}.dlq"

    @property
    def alerts(self) -> str:
        return f"bench-alerts-{self.run_id}"

    @property
    def baseline_group(self) -> str:
        return f"bench-plain-{self.run_id}"

    @property
    def worker_group(self) -> str:
        return f"bench-worker-{self.run_id}"

    @property
    def no_model_group(self) -> str:
        return f"bench-nomodel-{self.run_id}"

    @property
    def serial_group(self) -> str:
        return f"bench-serial-{self.run_id}"

    @property
    def id_prefix(self) -> str:
        return f"bench-{self.run_id}-"


@dataclass(frozen=True)
class Throughput:
    """Monotonic timestamps of one drain of the backlog."""

    messages: int
    started_at: float
    first_at: float
    first_count: int
    """Records (or rows) already there at the first sighting: a whole poll or batch at once."""
    last_at: float

    @property
    def steady_rate(self) -> float | None:
        span = self.last_at - self.first_at
        return (self.messages - self.first_count) / span if span > 0 else None

    @property
    def rate_including_join(self) -> float:
        return self.messages / (self.last_at - self.started_at)

    @property
    def time_to_first_s(self) -> float:
        return self.first_at - self.started_at


def progress(total: int, label: str) -> Progress:
    return shared_progress(total, label, "msg", interval_s=1.0)


class ProgressClock:
    """Turns a growing count into a Throughput; raises BenchError when the count stops growing."""

    def __init__(self, messages: int, label: str) -> None:
        self.messages = messages
        self.started_at = time.monotonic()
        self._first: tuple[float, int] | None = None
        self._last_change = self.started_at
        self._count = 0
        self._bar = progress(messages, label)

    @property
    def done(self) -> bool:
        return self._count >= self.messages

    def observe(self, count: int) -> None:
        now = time.monotonic()
        self._bar.update(max(0, count - self._count))
        if count > self._count:
            if self._first is None:
                self._first = (now, count)
            self._count = count
            self._last_change = now
        elif now - self._last_change > STALL_TIMEOUT_S:
            self._bar.close()
            raise BenchError(
                f"no progress for {STALL_TIMEOUT_S:.0f}s at {self._count} of {self.messages} messages: "
                "check the broker and database, and the dead-letter topic for rejected messages"
            )

    def result(self) -> Throughput:
        assert self._first is not None and self.done, "result() before every message was seen"
        self._bar.close()
        return Throughput(self.messages, self.started_at, self._first[0], self._first[1], self._last_change)


class BatchLog(logging.Handler):
    """Collects the timings and sizes of the worker's per-batch "batch" log lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.durations_ms: list[float] = []
        self.scoring_ms: list[float] = []
        self.writing_ms: list[float] = []
        self.sizes: list[int] = []
        self.scored: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "kv", None)
        if record.getMessage() == "batch" and isinstance(fields, dict):
            self.durations_ms.append(float(fields["duration_ms"]))
            self.scoring_ms.append(float(fields.get("scoring_ms", 0.0)))
            self.writing_ms.append(float(fields.get("writing_ms", 0.0)))
            self.sizes.append(int(fields["consumed"]))
            self.scored.append(int(fields.get("scored", 0)))

    def scoring_rate(self) -> float | None:
        """Articles per second of one lane of the model inside the worker, while it scores."""
        seconds = sum(self.scoring_ms) / 1000
        return sum(self.scored) / seconds if seconds > 0 else None


# ---------------------------------------------------------------- data


def headline_messages(count: int, names: RunNames, entities: list[KnownEntity], seed: int = 7,
                      tag: str = "", live_rate: float | None = None) -> Iterator[bytes]:
    """Wire-style articles: a third name tickers, a third a company by name, a third a $cashtag;
    some are market-wide, a fifth carry a body. Ids are the run's prefix, `tag`, then 0, 1, ...

    A backlog is dated from six hours ago, 0-2 s apart. News sent live at `live_rate` messages/s is
    dated when it is due to be sent (now + index / rate, to the millisecond), as news arriving as it
    happens is: never late against what is stored, and no two articles at one instant (which would
    make one feed dump of them all)."""
    generator = random.Random(f"{seed}{tag}")
    now = datetime.now(timezone.utc)
    published = now - timedelta(hours=6)
    for index in range(count):
        if live_rate is None:
            published += timedelta(seconds=generator.randint(0, 2))
        else:
            published = now + timedelta(seconds=index / live_rate)
        article = _article(index, generator, published, names, generator.choice(entities), tag,
                           timespec="seconds" if live_rate is None else "milliseconds")
        yield json.dumps(article).encode()


def _article(index: int, generator: random.Random, published: datetime, names: RunNames, entity: KnownEntity,
             tag: str = "", timespec: str = "seconds") -> dict[str, object]:
    source = generator.choice(SOURCES)
    words = {
        "name": entity.name,
        "ticker": entity.ticker,
        "move": generator.choice(MOVES),
        "move_past": generator.choice(("gained", "lost")),
        "pct": round(generator.uniform(0.5, 14.0), 1),
        "verdict": generator.choice(VERDICTS),
        "segment": generator.choice(SEGMENTS),
        "jobs": generator.randrange(200, 12_000, 100),
        "amount": generator.randint(1, 60),
    }
    style = index % 3
    if index % 11 == 0:
        headline = generator.choice(MARKET_HEADLINES).format(**words)
    elif style == 2:
        headline = f"${entity.ticker} " + generator.choice(MOVES) + f" {words['pct']}% in pre-market trading"
    else:
        headline = generator.choice(HEADLINE_TEMPLATES).format(**words)
    article: dict[str, object] = {
        "id": f"{names.id_prefix}{tag}{index}",
        "published_at": published.isoformat(timespec=timespec).replace("+00:00", "Z"),
        "headline": headline,
        "source": source,
        "url": f"https://news.example.com/{source.lower().replace(' ', '-')}/{index}",
        "lang": "en",
    }
    if style == 0:
        article["tickers"] = [entity.ticker]
    if index % 5 == 0:
        sentences = generator.sample(BODY_SENTENCES, k=generator.randint(2, 4))
        article["body"] = " ".join(sentence.format(**words) for sentence in sentences)
    return article


def produce_backlog(bootstrap: str, topic: str, values: Iterator[bytes], count: int, partitions: int) -> None:
    """Send every value round-robin over the partitions and wait until the broker acknowledged all."""
    producer = create_producer(KafkaOptions(bootstrap, client_id="finsent-bench-producer"), linger_ms=20)
    bar = progress(count, "producing")
    try:
        futures = []
        for index, value in enumerate(values):
            futures.append(producer.send(topic, value=value, partition=index % partitions))
            bar.update(1)
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    finally:
        bar.close()
        producer.close(timeout=10)


# ---------------------------------------------------------------- measurements


def measure_plain_loop(bootstrap: str, topic: str, group: str, messages: int, batch_size: int) -> Throughput:
    """The baseline: consume in a group, json.loads each value, commit after every poll."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        client_id="finsent-bench-plain",
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        max_poll_records=batch_size,
    )
    try:
        consumer.subscribe([topic])
        clock = ProgressClock(messages, "plain kafka-python loop")
        read = 0
        while not clock.done:
            polled = consumer.poll(timeout_ms=500)
            for records in polled.values():
                for record in records:
                    json.loads(record.value)
                read += len(records)
            if polled:
                consumer.commit()
            clock.observe(read)
        return clock.result()
    finally:
        consumer.close(autocommit=False)


class NoModelScorer:
    """The worker's scorer minus the forward pass: tokenizes as usual, answers neutral at no cost,
    so that the worker's own path can be measured without the model."""

    def __init__(self, real: Scorer) -> None:
        self._real = real
        self.version = real.version + "+no-model"
        self.device, self.precision, self.choice = real.device, real.precision, None
        self.lanes = ModelLanes()  # nothing to score: one thread answers

    def encode(self, texts: list[str]) -> EncodedTexts:
        return self._real.encode(texts)

    def score_encoded(self, encoded: EncodedTexts) -> list[ArticleScore]:
        return [ArticleScore(0.0, 1.0, 0.0, 1)] * encoded.texts


@contextmanager
def running_worker(settings: Settings, scorer: object,
                   overlap: bool = True) -> Iterator[tuple[Worker, threading.Thread, list[BaseException]]]:
    """The finsent worker in a thread, stopped on leaving."""
    worker = Worker(settings, scorer=scorer, overlap=overlap)  # type: ignore[arg-type]
    worker.start()
    errors: list[BaseException] = []
    thread = threading.Thread(target=_run_capturing, args=(worker.run, errors), name="finsent-worker", daemon=True)
    thread.start()
    try:
        yield worker, thread, errors
    finally:
        worker.stop.set()
        thread.join(timeout=30)


def wait_for_rows(engine: Engine, clock: ProgressClock, rows_before: int, thread: threading.Thread,
                  errors: list[BaseException], prefix: str = "") -> None:
    while not clock.done:
        if errors or not thread.is_alive():
            raise BenchError(f"the worker stopped early: {errors[0]!r}" if errors else "the worker stopped early")
        time.sleep(PROGRESS_INTERVAL_S)
        clock.observe((count_articles(engine, prefix) if prefix else count_articles(engine)) - rows_before)


def measure_worker(settings: Settings, engine: Engine, messages: int, scorer: object, label: str,
                   overlap: bool = True) -> Throughput:
    """A worker draining the backlog; progress is the growth of the articles table."""
    rows_before = count_articles(engine)
    with running_worker(settings, scorer, overlap) as (_, thread, errors):
        clock = ProgressClock(messages, label)
        wait_for_rows(engine, clock, rows_before, thread, errors)
        return clock.result()


@dataclass(frozen=True)
class Latency:
    load: float
    rate: float
    messages: int
    p50_ms: float
    p95_ms: float


def measure_latency(settings: Settings, infra: Infrastructure, names: RunNames, scorer: Scorer, sustained: float,
                    options: BenchOptions) -> list[Latency]:
    """Produce -> stored at steady fractions of the sustained rate, the worker waiting at the log end."""
    results: list[Latency] = []
    entities = load_entities(None)
    # The paced producer runs in a process of its own, as a news feed would: in this one its network
    # thread took 0.14 of a core, measured, and held the worker's GIL while it did.
    with running_worker(settings, scorer) as (worker, thread, errors), \
            ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as producer:
        wait_for_assignment(worker, thread, errors)
        for phase, load in enumerate(options.loads):
            rate = max(1.0, load * sustained)
            count = max(20, round(rate * options.latency_seconds))
            tag = f"load{phase}-"
            values = list(headline_messages(count, names, entities, tag=tag, live_rate=rate))
            ids = [f"{names.id_prefix}{tag}{index}" for index in range(count)]
            sent = producer.submit(produce_paced, infra.bootstrap, names.topic, values, ids, rate, options.partitions,
                                   f"{100 * load:.0f}% load, {rate:,.0f} msg/s").result()
            prefix = names.id_prefix + tag
            clock = ProgressClock(count, f"stored at {100 * load:.0f}% load")
            wait_for_rows(infra.engine, clock, 0, thread, errors, prefix=prefix)
            clock.result()
            stored = ingested_times(infra.engine, prefix)
            delays = [1000 * (stored[article_id] - sent[article_id]) for article_id in ids]
            results.append(Latency(load, rate, count, percentile(delays, 0.50), percentile(delays, 0.95)))
    return results


def wait_for_assignment(worker: Worker, thread: threading.Thread, errors: list[BaseException]) -> None:
    """Until the worker owns partitions: messages sent during the group join would measure the join."""
    deadline = time.monotonic() + STALL_TIMEOUT_S
    while not worker.assignment():
        if errors or not thread.is_alive() or time.monotonic() > deadline:
            raise BenchError(f"the worker got no partitions: {errors[0]!r}" if errors else "the worker got no partitions")
        time.sleep(PROGRESS_INTERVAL_S)


def produce_paced(bootstrap: str, topic: str, values: list[bytes], ids: list[str], rate: float, partitions: int,
                  label: str) -> dict[str, float]:
    """Send at a steady `rate`; returns each id's send time (wall clock, as PostgreSQL's now())."""
    producer = create_producer(KafkaOptions(bootstrap, client_id="finsent-bench-paced"), linger_ms=0)
    bar = progress(len(values), label)
    sent: dict[str, float] = {}
    try:
        started = time.monotonic()
        for index, (article_id, value) in enumerate(zip(ids, values, strict=True)):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent[article_id] = time.time()
            producer.send(topic, value=value, partition=index % partitions)
            bar.update(1)
        producer.flush()
    finally:
        bar.close()
        producer.close(timeout=10)
    return sent


def ingested_times(engine: Engine, prefix: str) -> dict[str, float]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, extract(epoch FROM ingested_at) FROM articles WHERE id LIKE :prefix"),
                                  {"prefix": prefix + "%"}).all()
    return {article_id: float(epoch) for article_id, epoch in rows}


def measure_processes(infra: Infrastructure, names: RunNames, options: BenchOptions, data_dir: Path,
                      processes: int) -> Throughput:
    """`finsent worker --processes N` as users run it, in its own group, draining the same backlog."""
    delete_articles(infra.engine, names)
    group = f"bench-processes{processes}-{names.run_id}"
    environment = {**os.environ, **worker_environment(infra, names, options, data_dir, group), "FINSENT_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "pipeline.cli", "worker", "--processes", str(processes)]
    started = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        clock = ProgressClock(options.messages, f"finsent worker --processes {processes}")
        while not clock.done:
            if started.poll() is not None:
                raise BenchError(f"finsent worker --processes {processes} exited with {started.returncode}: "
                                 f"{started.stderr.read().decode(errors='replace')[-500:] if started.stderr else ''}")
            time.sleep(PROGRESS_INTERVAL_S)
            clock.observe(count_articles(infra.engine))
        return clock.result()
    finally:
        started.send_signal(signal.SIGTERM)
        try:
            started.wait(timeout=90)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait()


@contextmanager
def on_every_core() -> Iterator[None]:
    """The model alone gets every core (the worker may have been given fewer threads), then the worker's count back."""
    workers_threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(workers_threads)


def backlog_items(messages: int, names: RunNames) -> list[NewsItem]:
    """The first `messages` articles of the backlog, as the worker validated them."""
    return [item for item in (parse_news(value) for value in headline_messages(messages, names, load_entities(None)))
            if isinstance(item, NewsItem)]


def every_core_in(lanes: ModelLanes, device: torch.device) -> ModelLanes:
    """The same number of lanes, sharing every core (the worker may have been given fewer threads)."""
    return ModelLanes.for_device(device, os.cpu_count(), lanes.count)


def scoring_rate(scorer: Scorer, items: list[NewsItem], batch_size: int, bar: Progress, lanes: ModelLanes) -> float:
    """Articles/s of `scorer` over `items` in consecutive batches of `batch_size`, each lane's
    thread taking the next batch as the worker's lanes do."""
    batches = iter([items[start:start + batch_size] for start in range(0, len(items), batch_size)])
    taking = threading.Lock()
    errors: list[BaseException] = []

    def lane() -> None:
        lanes.enter()
        while not errors:
            with taking:
                batch = next(batches, None)
            if batch is None:
                return
            scorer.score_items(batch)
            with taking:
                bar.update(len(batch))

    threads = [threading.Thread(target=_run_capturing, args=(lane, errors)) for _ in range(lanes.count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return len(items) / (time.perf_counter() - started)


@dataclass(frozen=True)
class ModelAlone:
    """The worker's model on the same articles with nothing else to do, on every core: articles/s
    in its lanes (the ratio's baseline) and in one lane, as the serial worker runs it."""

    lanes: ModelLanes
    in_lanes: float
    one_lane: float


def measure_scorer_alone(scorer: Scorer, messages: int, names: RunNames, batch_size: int) -> ModelAlone:
    lanes = every_core_in(scorer.lanes, scorer.device)
    with on_every_core():
        items = backlog_items(messages, names)
        scorer.score_items(items[:batch_size])  # warm-up, as the worker's first batch was
        variants = [lanes, every_core_in(ModelLanes(), scorer.device)] if lanes.count > 1 else [lanes]
        bar = progress(len(variants) * len(items), "the model alone (same articles)")
        try:
            rates = [scoring_rate(scorer, items, batch_size, bar, variant) for variant in variants]
        finally:
            bar.close()
    return ModelAlone(lanes, rates[0], rates[-1])


@dataclass(frozen=True)
class PassPlanning:
    """The model alone with its passes planned by their measured cost against passes filled to the
    token budget (how the Scorer packed before pipeline/scoring/packing.py), by batch size."""

    articles: int
    planned: dict[int, float]
    filled: dict[int, float]


FILLED_PASSES = ForwardCost(fixed_s=1.0, per_token_s=1e-9)
"""A cost under which padding is free: every pass is filled up to the budget."""
PLANNING_BATCHES = (32, 256)
"""A live batch (the stream is keeping up) and a backlog batch."""
PLANNING_ARTICLES = 2000


def measure_pass_planning(scorer: Scorer, names: RunNames, articles: int = PLANNING_ARTICLES) -> PassPlanning:
    """Both plans on the same articles, filled then planned for each batch size, on every core, as the model alone."""
    measured = scorer.forward_cost
    filled = MeasuredForwardCost(FILLED_PASSES, min_samples=sys.maxsize)  # never refitted: stays FILLED_PASSES
    rates: dict[str, dict[int, float]] = {"planned": {}, "filled": {}}
    lanes = every_core_in(scorer.lanes, scorer.device)
    with on_every_core():
        items = backlog_items(articles, names)
        bar = progress(2 * len(PLANNING_BATCHES) * len(items), "the model alone: planned passes against filled ones")
        try:
            for size in PLANNING_BATCHES:
                for plan, cost in (("filled", filled), ("planned", measured)):
                    scorer.forward_cost = cost
                    rates[plan][size] = scoring_rate(scorer, items, size, bar, lanes)
        finally:
            scorer.forward_cost = measured
            bar.close()
    return PassPlanning(len(items), rates["planned"], rates["filled"])


def _run_capturing(target: Callable[[], None], errors: list[BaseException]) -> None:
    try:
        target()
    except BaseException as error:  # noqa: BLE001 - reported by the measuring thread
        errors.append(error)


def count_articles(engine: Engine, prefix: str = "") -> int:
    with engine.connect() as connection:
        if prefix:
            return int(connection.execute(sa.text("SELECT count(*) FROM articles WHERE id LIKE :prefix"),
                                          {"prefix": prefix + "%"}).scalar_one())
        return int(connection.execute(sa.text("SELECT count(*) FROM articles")).scalar_one())


def delete_articles(engine: Engine, names: RunNames) -> None:
    """Between two drains of the same backlog: the next worker must find nothing stored."""
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM articles WHERE id LIKE :prefix"), {"prefix": names.id_prefix + "%"})


def count_mentions(engine: Engine, names: RunNames) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.text("SELECT count(*) FROM article_entities WHERE article_id LIKE :prefix"),
                {"prefix": names.id_prefix + "%"},
            ).scalar_one()
        )


def worker_settings(infra: Infrastructure, names: RunNames, options: BenchOptions, data_dir: Path,
                    group: str = "") -> Settings:
    return Settings.load(worker_environment(infra, names, options, data_dir, group))


def worker_environment(infra: Infrastructure, names: RunNames, options: BenchOptions, data_dir: Path,
                       group: str = "") -> dict[str, str]:
    return {
            "FINSENT_MODEL": options.model,
            "FINSENT_TORCH_THREADS": str(options.threads),
            "FINSENT_KAFKA_BOOTSTRAP": infra.bootstrap,
            "FINSENT_DATABASE_URL": infra.database_url,
            "FINSENT_TOPIC_NEWS": names.topic,
            "FINSENT_TOPIC_DEAD_LETTER": names.dead_letter,
            "FINSENT_TOPIC_ALERTS": names.alerts,
            "FINSENT_TOPIC_PARTITIONS": str(options.partitions),
            "FINSENT_CONSUMER_GROUP": group or names.worker_group,
            "FINSENT_BATCH_SIZE": str(options.batch_size),
            "FINSENT_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "FINSENT_KAFKA_HEARTBEAT_INTERVAL_MS": str(HEARTBEAT_INTERVAL_MS),
            "FINSENT_DATA_DIR": str(data_dir),
        }


def peak_rss_mib() -> float:
    """High-water mark of this process's resident memory (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


# ---------------------------------------------------------------- infrastructure


@contextmanager
def infrastructure(options: BenchOptions, workdir: Path) -> Iterator[Infrastructure]:
    """The broker and database to measure against: external ones if given, else embedded ones."""
    with ExitStack() as stack:
        bootstrap = options.kafka
        if not bootstrap:
            broker = stack.enter_context(EmbeddedBroker(log_path=workdir / "tansu.log"))
            bootstrap = broker.bootstrap
        url = options.database_url
        if not url:
            server = EmbeddedPostgres(workdir, delete_on_exit=True)
            stack.callback(server.stop)
            url = server.start()
        engine = make_engine(url, pool_size=1, application_name="finsent-bench")
        stack.callback(engine.dispose)
        upgrade(engine)
        version = server_version(engine)
        yield Infrastructure(
            bootstrap=bootstrap,
            database_url=url,
            engine=engine,
            broker_label=f"kafka at {bootstrap}" if options.kafka else "embedded tansu",
            database_label=f"postgres {version} at {redacted(url)}" if options.database_url else f"embedded postgres {version}",
            external_broker=bool(options.kafka),
            external_database=bool(options.database_url),
        )


def server_version(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(sa.text("SHOW server_version")).scalar_one()).split()[0]


def remove_run_data(infra: Infrastructure, names: RunNames) -> None:
    """On external services, delete what this run created (embedded ones vanish on their own)."""
    if infra.external_database:
        with infra.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM articles WHERE id LIKE :prefix"), {"prefix": names.id_prefix + "%"})
    if infra.external_broker:
        admin = create_admin(KafkaOptions(infra.bootstrap, client_id="finsent-bench-admin"))
        try:
            admin.delete_topics([names.topic, names.dead_letter])
        except KafkaError as error:
            print(f"note: could not delete topics {names.topic}, {names.dead_letter}: {error}", file=sys.stderr)
        finally:
            admin.close()


# ---------------------------------------------------------------- report


@dataclass(frozen=True)
class Report:
    options: BenchOptions
    infra: Infrastructure
    baseline: Throughput
    no_model: Throughput
    serial: Throughput
    """The worker with its stages not overlapped: one batch at a time, start to finish."""
    pipeline: Throughput
    batches: BatchLog
    scorer_alone: ModelAlone
    planning: PassPlanning
    latencies: list[Latency]
    processes: dict[int, Throughput]
    """`finsent worker --processes N` draining the same backlog, by N."""
    model: str
    mentions: int
    rss_after_produce_mib: float
    rss_after_baseline_mib: float
    rss_peak_mib: float


def _rate(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "n/a"


def _row(label: str, result: Throughput) -> str:
    return f"{label:<35}{_rate(result.steady_rate):>14}{_rate(result.rate_including_join):>21}{result.time_to_first_s:>18.2f} s"


def _overhead(baseline: Throughput, pipeline: Throughput) -> str:
    if baseline.steady_rate is None or pipeline.steady_rate is None:
        return "pipeline overhead: n/a (too few messages for a steady rate)"
    ratio = baseline.steady_rate / pipeline.steady_rate
    if ratio >= 1:
        return f"pipeline overhead: {ratio:.2f}× slower than the plain loop"
    return f"pipeline overhead: {1 / ratio:.2f}× faster than the plain loop"


def _split(report: Report) -> str:
    """How busy the model and the transaction were over the worker's drain (they overlap)."""
    batches, drain = report.batches, report.pipeline
    # From the first batch's start (its rows are the first sighting) to the last sighting.
    span_ms = 1000 * (drain.last_at - drain.first_at) + (batches.durations_ms[0] if batches.durations_ms else 0.0)
    if not batches.durations_ms or span_ms <= 0:
        return "worker time split: n/a (no batch lines)"
    lanes = report.scorer_alone.lanes.count
    per_lane = batches.scoring_rate()
    return (
        f"over the worker's drain the model's {lanes} lane{'s were' if lanes != 1 else ' was'} busy "
        f"{100 * sum(batches.scoring_ms) / (span_ms * lanes):.0f}% of the time "
        f"(inside the worker: {_rate(per_lane * lanes if per_lane is not None else None)} articles/s while busy, "
        f"alone: {_rate(report.scorer_alone.in_lanes)}) "
        f"and the database transaction {100 * sum(batches.writing_ms) / span_ms:.0f}%, overlapped"
    )


def _model_alone_rows(alone: ModelAlone) -> list[str]:
    """The model alone in the worker's lanes (the ratio's baseline) and, where it has several, in one."""
    def lanes(count: int, threads: int | None) -> str:
        return f"{count} lane{'s' if count != 1 else ''}" + (f" × {threads} thread{'s' if threads != 1 else ''}"
                                                            if threads else "")

    label = "the model alone on the same articles"
    if alone.lanes.count == 1:
        return [f"{label:<35}{_rate(alone.in_lanes):>14}"]
    return [f"{label:<35}{_rate(alone.in_lanes):>14}   ({lanes(alone.lanes.count, alone.lanes.threads_per_lane)}, "
            f"as the worker scores; baseline of the ratio)",
            f"{'  … in one lane on every core':<35}{_rate(alone.one_lane):>14}   (as before lanes, and the serial worker)"]


def _planning(planning: PassPlanning) -> str:
    sizes = "; ".join(f"batches of {size}: {_rate(planning.planned[size])} against {_rate(planning.filled[size])} "
                      f"({planning.planned[size] / planning.filled[size]:.2f}×)" for size in planning.planned)
    return f"the model alone, passes cut by measured cost against passes filled to the budget ({planning.articles} articles): {sizes}"


def render(report: Report) -> str:
    options, batches = report.options, report.batches
    latency = (
        f"batch latency p50 {percentile(batches.durations_ms, 0.50):.1f} ms p95 {percentile(batches.durations_ms, 0.95):.1f} ms"
        if batches.durations_ms
        else "batch latency n/a"
    )
    mean_batch = sum(batches.sizes) / len(batches.sizes) if batches.sizes else 0.0
    return "\n".join(
        [
            f"finsent ingest benchmark: {options.messages} messages, {options.partitions} "
            f"partition{'s' if options.partitions != 1 else ''}, "
            f"batch {options.batch_size}, broker={report.infra.broker_label}, db={report.infra.database_label}",
            f"model: {report.model}",
            f"{'':<35}{'msg/s (steady)':>14}{'msg/s (incl. join)':>21}{'time to first':>20}",
            _row("plain kafka-python consume loop", report.baseline),
            _row("finsent worker without the model", report.no_model),
            *_model_alone_rows(report.scorer_alone),
            _row("finsent worker, stages not overlapped", report.serial),
            _row("finsent worker → PostgreSQL", report.pipeline),
            *(_row(f"finsent worker --processes {n} (CLI)", result) for n, result in report.processes.items()),
            f"{_overhead(report.baseline, report.pipeline)}; {latency}; peak RSS {report.rss_peak_mib:.0f} MiB",
            _split(report),
            _planning(report.planning),
            *(f"produce → stored at {100 * row.load:.0f}% of the sustained rate ({row.rate:,.0f} msg/s, {row.messages} "
              f"messages): p50 {row.p50_ms:,.0f} ms, p95 {row.p95_ms:,.0f} ms" for row in report.latencies),
            "",
            f"worker: {len(batches.sizes)} batches of {mean_batch:.0f} messages on average, "
            f"{options.messages} articles and {report.mentions} entity mentions stored",
            "steady = messages after the first sighting / (last - first sighting); incl. join = all messages / "
            "(last sighting - subscribe); worker progress polled every "
            f"{PROGRESS_INTERVAL_S * 1000:.0f} ms",
            "batch latency = validate -> transaction -> offset commit of one batch (poll time excluded; "
            "the stages overlap, so it includes waits between them)",
            f"peak RSS = this Python process only (after producing {report.rss_after_produce_mib:.0f} MiB, "
            f"after the plain loop {report.rss_after_baseline_mib:.0f} MiB); broker and PostgreSQL not included",
            _ratio(report),
        ]
    )


def _ratio(report: Report) -> str:
    """The last line, exactly this shape, for scripts."""
    steady = report.pipeline.steady_rate
    alone = report.scorer_alone.in_lanes
    ratio = steady / alone if steady is not None and alone > 0 else float("nan")
    return f"worker/bare-model throughput ratio: {ratio:.3f}"


# ---------------------------------------------------------------- main


def run(options: BenchOptions) -> Report:
    names = RunNames(uuid.uuid4().hex[:10])
    with tempfile.TemporaryDirectory(prefix="finsent-bench-") as tmp, infrastructure(options, Path(tmp)) as infra:
        ensure_topics(KafkaOptions(infra.bootstrap, client_id="finsent-bench-admin"), [names.topic, names.dead_letter], options.partitions)
        try:
            return measure_both(options, infra, names, Path(tmp) / "data")
        finally:
            remove_run_data(infra, names)


def measure_both(options: BenchOptions, infra: Infrastructure, names: RunNames, data_dir: Path) -> Report:
    values = headline_messages(options.messages, names, load_entities(None))
    produce_backlog(infra.bootstrap, names.topic, values, options.messages, options.partitions)
    rss_after_produce = peak_rss_mib()
    baseline = measure_plain_loop(infra.bootstrap, names.topic, names.baseline_group, options.messages, options.batch_size)
    rss_after_baseline = peak_rss_mib()
    data_dir.mkdir(parents=True, exist_ok=True)
    share_installed_base(data_dir, Settings.load({k: v for k, v in os.environ.items() if k == "FINSENT_DATA_DIR"}).data_dir)
    # Before this process loads a model of its own, whose idle threads would compete with the children.
    processes = {n: measure_processes(infra, names, options, data_dir, n) for n in options.processes}
    settings = worker_settings(infra, names, options, data_dir)
    scorer = load_scorer(settings)
    delete_articles(infra.engine, names)
    no_model = measure_worker(worker_settings(infra, names, options, data_dir, names.no_model_group), infra.engine,
                              options.messages, NoModelScorer(scorer), "finsent worker without the model")
    delete_articles(infra.engine, names)
    serial = measure_worker(worker_settings(infra, names, options, data_dir, names.serial_group), infra.engine,
                            options.messages, scorer, "finsent worker, one batch at a time", overlap=False)
    delete_articles(infra.engine, names)
    batches = BatchLog()
    worker_log = logging.getLogger("pipeline.worker")
    worker_log.addHandler(batches)
    try:
        pipeline = measure_worker(settings, infra.engine, options.messages, scorer, "finsent worker -> PostgreSQL")
    finally:
        worker_log.removeHandler(batches)
    mentions = count_mentions(infra.engine, names)
    rss_peak = peak_rss_mib()
    scorer_alone = measure_scorer_alone(scorer, options.messages, names, options.batch_size)
    planning = measure_pass_planning(scorer, names)
    latencies = measure_latency(settings, infra, names, scorer, pipeline.steady_rate or 1.0, options) if options.loads else []
    model = f"{scorer.version} ({scorer.device}, {scorer.precision})"
    return Report(options, infra, baseline, no_model, serial, pipeline, batches, scorer_alone, planning, latencies, processes, model,
                  mentions, rss_after_produce, rss_after_baseline, rss_peak)


def parse_options(argv: list[str] | None = None) -> BenchOptions:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=positive_int, default=20_000, help="messages to produce and drain (default 20000)")
    parser.add_argument("--partitions", type=positive_int, default=4, help="partitions of the benchmark topic (default 4)")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="worker batch size and baseline max_poll_records (default 256)")
    parser.add_argument("--kafka", default=os.environ.get("FINSENT_BENCH_KAFKA", ""), metavar="HOST:PORT",
                        help="external broker (env FINSENT_BENCH_KAFKA); default: start the embedded one")
    parser.add_argument("--database-url", default=os.environ.get("FINSENT_BENCH_DATABASE_URL", ""), metavar="URL",
                        help="external scratch PostgreSQL (env FINSENT_BENCH_DATABASE_URL); default: start an embedded one")
    parser.add_argument("--model", default="auto", help="FINSENT_MODEL of the worker: auto (default), fast, accurate or a directory")
    parser.add_argument("--loads", type=_fractions, default=(0.25, 0.5, 0.9), metavar="F,F,...",
                        help="fractions of the sustained rate to measure latency at (default 0.25,0.5,0.9; empty: skip)")
    parser.add_argument("--latency-seconds", type=float, default=15.0, help="seconds of paced producing per load (default 15)")
    parser.add_argument("--threads", type=int, default=0,
                        help="the worker's torch threads (default 0: every core; the bare model always uses every core)")
    parser.add_argument("--processes", type=_counts, default=(), metavar="N,N,...",
                        help="also drain the backlog with `finsent worker --processes N` for each N (e.g. 1,2)")
    args = parser.parse_args(argv)
    return BenchOptions(args.messages, args.partitions, args.batch_size, args.kafka.strip(), args.database_url.strip(),
                        args.model, args.loads, args.latency_seconds, args.processes, args.threads)


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(positive_int(part) for part in text.split(",") if part.strip())
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of process counts such as 1,2") from None


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of fractions such as 0.25,0.5,0.9") from None
    if any(not 0 < value <= 1 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r}: each load is a fraction in (0, 1]")
    return values


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    configure_logging("WARNING")
    # The worker's INFO "batch" lines feed BatchLog; they would drown the progress on stderr.
    logging.getLogger("pipeline.worker").setLevel(logging.INFO)
    logging.getLogger("pipeline.worker").propagate = False
    try:
        report = run(options)
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    print(render(report))
    return 0


if __name__ == "__main__":
    from pipeline.interruption import run_interruptible

    sys.exit(run_interruptible(main, "bench/ingest.py"))  # SIGTERM as Ctrl-C: the embedded servers it started are stopped
