"""Consumer lag under a real backlog: every assigned partition counts, fetched or not."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from consumers.batch_consumer import BatchConsumer, BatchReport
from consumers.dead_letter import DeadLetterPublisher
from consumers.kafka_clients import KafkaOptions, create_consumer, create_producer
from consumers.schema import NewsItem
from tests.conftest import TEST_HEARTBEAT_INTERVAL_MS, TEST_SESSION_TIMEOUT_MS, Topics
from tests.support.broker_io import produce, wait_until
from tests.support.news_factory import valid_messages

pytestmark = pytest.mark.integration

BACKLOG = 6000
BATCH = 256


def _consumer(kafka_bootstrap: str, topics: Topics, sink: Callable[[Sequence[NewsItem]], None], batch_size: int,
              **settings: Any) -> BatchConsumer:
    """A BatchConsumer on the test topics with the suite's group timing, `batch_size` records a poll."""
    options = KafkaOptions(kafka_bootstrap, session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
                           heartbeat_interval_ms=TEST_HEARTBEAT_INTERVAL_MS)
    return BatchConsumer(create_consumer(options, topics.group, max_poll_records=batch_size), topics.news, sink,
                         DeadLetterPublisher(create_producer(options), topics.dead_letter), batch_size=batch_size,
                         **settings)


def test_lag_counts_the_whole_backlog_of_every_assigned_partition(kafka_bootstrap: str, topics: Topics) -> None:
    produce(kafka_bootstrap, topics.news, valid_messages(BACKLOG))
    stored: list[NewsItem] = []

    def keep(items: Sequence[NewsItem]) -> None:
        stored.extend(items)

    consumer = _consumer(kafka_bootstrap, topics, keep, BATCH, max_wait_ms=2000)
    try:
        report = wait_until(consumer.run_once, timeout_s=120, what="a first batch")
        assert report.committed and report.consumed == BATCH
        behind = BACKLOG - BATCH
        # Tansu lists end offsets a little low for partitions not fetched yet; Kafka's are exact.
        assert report.lag is not None and 0.95 * behind <= report.lag <= behind, report.lag
        second = wait_until(consumer.run_once, timeout_s=60, what="a second batch")
        assert second.lag is not None and second.lag <= report.lag - BATCH + 0.05 * behind
    finally:
        consumer.close()


def test_a_worker_gone_quiet_reports_its_true_lag_not_a_reading_from_mid_backlog(kafka_bootstrap: str,
                                                                                 topics: Topics) -> None:
    """The overlapped loop reads the lag at most once a second; its last batch must not keep a
    reading taken while records of it were still unfetched (a gauge stuck above 0 while idle)."""
    small, backlog = 5, 17  # the first reading comes while 2 records are still unfetched
    produce(kafka_bootstrap, topics.news, valid_messages(backlog))
    stored: list[NewsItem] = []
    reports: list[BatchReport] = []

    def slow_keep(items: Sequence[NewsItem]) -> None:
        time.sleep(0.2)  # all four batches inside one second: the throttle applies between them
        stored.extend(items)

    consumer = _consumer(kafka_bootstrap, topics, slow_keep, small, on_batch=reports.append)
    worker = threading.Thread(target=consumer.run, name="lag-test-consumer", daemon=True)
    worker.start()
    try:
        wait_until(lambda: len(stored) == backlog and sum(report.consumed for report in reports) == backlog,
                   timeout_s=120, what=f"{backlog} messages stored and committed")
        assert reports[-1].lag == 0, [report.lag for report in reports]
    finally:
        consumer.stop.set()
        worker.join(timeout=30)
        consumer.close()
