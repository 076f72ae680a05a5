"""Crashes and outages against the real broker and PostgreSQL: nothing lost, nothing doubled."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from kafka import KafkaAdminClient
from sqlalchemy import Engine

from consumers.batch_consumer import RetryPolicy
from consumers.schema import parse_news
from pipeline.config import Settings
from pipeline.redaction import Secret
from pipeline.worker import Worker
from storage.embedded import EmbeddedPostgres
from storage.engine import make_engine
from tests.conftest import Topics
from tests.support.broker_io import produce, read_topic, wait_until
from tests.support.news_factory import valid_messages
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def article_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM articles")).scalar_one())


def stored_ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(sa.text("SELECT id FROM articles")).scalars())


def committed_total(bootstrap: str, group: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return sum(max(0, meta.offset) for meta in offsets.values())


@pytest.fixture
def worker_processes(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.kill()


def test_sigkill_mid_stream_then_restart_loses_and_doubles_nothing(
    worker_environment: dict[str, str], engine: Engine, topics: Topics, kafka_bootstrap: str,
    worker_processes: list[WorkerProcess], tmp_path: Path,
) -> None:
    first_half, second_half = valid_messages(2500), valid_messages(2500, start=2500)
    environment = {**worker_environment, "FINSENT_BATCH_SIZE": "50"}
    worker = WorkerProcess(environment, tmp_path / "worker-1.log").start()
    worker_processes.append(worker)
    produce(kafka_bootstrap, topics.news, first_half)
    wait_until(lambda: article_count(engine) >= 300, timeout_s=120, what="the worker to store some articles")
    worker.kill()  # SIGKILL: no cleanup, possibly mid-transaction
    at_kill = article_count(engine)
    assert at_kill < len(first_half), "the kill must land mid-stream for this test to mean anything"

    produce(kafka_bootstrap, topics.news, second_half)
    restarted = WorkerProcess(environment, tmp_path / "worker-2.log").start()
    worker_processes.append(restarted)
    expected = {parse_news(value).id for _, value in first_half + second_half}
    wait_until(lambda: article_count(engine) >= len(expected), timeout_s=180, what="all articles after restart")
    assert stored_ids(engine) == expected
    with engine.connect() as connection:
        mentions = connection.execute(sa.text("SELECT count(*) FROM article_entities WHERE entity = 'MARKET'")).scalar_one()
        scores = connection.execute(sa.text("SELECT count(*) FROM article_scores")).scalar_one()
        bucketed = connection.execute(sa.text(
            "SELECT width_seconds, sum(article_count) FROM buckets WHERE entity = 'MARKET' GROUP BY width_seconds")).all()
    assert mentions == len(expected)
    assert scores == len(expected)
    assert dict(bucketed) == {300: len(expected), 3600: len(expected)}, "no article counted twice in any bucket"
    assert restarted.running, restarted.log_text()


def writes_waiting_on_a_lock(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            " AND datname = current_database()")).scalar_one())


def test_sigkill_while_a_scored_batch_waits_to_be_written_loses_and_doubles_nothing(
    worker_environment: dict[str, str], engine: Engine, topics: Topics, kafka_bootstrap: str,
    worker_processes: list[WorkerProcess], tmp_path: Path,
) -> None:
    """The worker scores batch N+1 while it writes batch N: a kill then must not cost N+1, nor commit it."""
    messages = valid_messages(1200)
    environment = {**worker_environment, "FINSENT_BATCH_SIZE": "50"}
    worker = WorkerProcess(environment, tmp_path / "worker-1.log").start()
    worker_processes.append(worker)
    produce(kafka_bootstrap, topics.news, messages[:100])
    wait_until(lambda: article_count(engine) == 100, timeout_s=120, what="the first 100 articles")
    with engine.connect() as blocker:
        # Inserts wait behind this lock; reads (the worker's lookups before scoring) do not.
        blocker.execute(sa.text("LOCK TABLE articles IN SHARE ROW EXCLUSIVE MODE"))
        produce(kafka_bootstrap, topics.news, messages[100:])
        wait_until(lambda: writes_waiting_on_a_lock(engine) > 0, timeout_s=120,
                   what="a scored batch waiting for its transaction")
        stored_at_kill = article_count(engine)
        assert committed_total(kafka_bootstrap, topics.group) <= stored_at_kill, "offsets committed for unwritten articles"
        worker.kill()
        blocker.rollback()
    assert stored_at_kill < len(messages)

    restarted = WorkerProcess(environment, tmp_path / "worker-2.log").start()
    worker_processes.append(restarted)
    expected = {parse_news(value).id for _, value in messages}
    wait_until(lambda: article_count(engine) >= len(expected), timeout_s=180, what="all articles after restart")
    assert stored_ids(engine) == expected
    with engine.connect() as connection:
        scores = connection.execute(sa.text("SELECT count(*) FROM article_scores")).scalar_one()
        bucketed = connection.execute(sa.text(
            "SELECT width_seconds, sum(article_count) FROM buckets WHERE entity = 'MARKET' GROUP BY width_seconds")).all()
    assert scores == len(expected)
    assert dict(bucketed) == {300: len(expected), 3600: len(expected)}, "no article counted twice in any bucket"
    assert restarted.running, restarted.log_text()


def test_sigterm_stops_the_worker_cleanly(
    worker_environment: dict[str, str], engine: Engine, topics: Topics, kafka_bootstrap: str,
    worker_processes: list[WorkerProcess], tmp_path: Path,
) -> None:
    worker = WorkerProcess(worker_environment, tmp_path / "worker.log").start()
    worker_processes.append(worker)
    produce(kafka_bootstrap, topics.news, valid_messages(200))
    wait_until(lambda: article_count(engine) == 200, timeout_s=120, what="200 articles")
    wait_until(lambda: committed_total(kafka_bootstrap, topics.group) == 200, timeout_s=30, what="offsets committed")
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout_s=30) == 0
    log = worker.log_text()
    assert "event=stop_requested signal=SIGTERM" in log
    assert "Traceback" not in log


class _RetryCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "batch_retry":
            self.retries += 1


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, since the test stops it."""
    server = EmbeddedPostgres(tmp_path / "own-db", delete_on_exit=True)
    server.start()
    yield server
    server.stop()


def test_database_outage_commits_nothing_dead_letters_nothing_and_recovers(
    settings: Settings, own_postgres: EmbeddedPostgres, topics: Topics, kafka_bootstrap: str
) -> None:
    url = own_postgres.start()
    engine = make_engine(url)
    worker = Worker(settings.replace(database_url=Secret(url)), retry=RetryPolicy(initial_delay_s=0.2, max_delay_s=1.0))
    worker.start()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    retries = _RetryCounter()
    logging.getLogger("consumers.batch_consumer").addHandler(retries)
    try:
        produce(kafka_bootstrap, topics.news, valid_messages(300))
        wait_until(lambda: article_count(engine) == 300, timeout_s=120, what="300 articles before the outage")
        wait_until(lambda: committed_total(kafka_bootstrap, topics.group) == 300, timeout_s=30, what="offsets at 300")
        engine.dispose()

        own_postgres.stop_server_process()
        produce(kafka_bootstrap, topics.news, valid_messages(300, start=300))
        wait_until(lambda: retries.retries >= 3, timeout_s=60, what="the worker to retry against the stopped database")
        assert committed_total(kafka_bootstrap, topics.group) == 300, "no offset committed for unwritten batches"
        assert thread.is_alive()

        own_postgres.start_server_process()
        wait_until(lambda: article_count(engine) == 600, timeout_s=120, what="all 600 articles after recovery")
        wait_until(lambda: committed_total(kafka_bootstrap, topics.group) == 600, timeout_s=30, what="offsets at 600")
        assert read_topic(kafka_bootstrap, topics.dead_letter, idle_s=1.0) == [], "nothing dead-lettered"
        expected = {parse_news(value).id for _, value in valid_messages(600)}
        assert stored_ids(engine) == expected
    finally:
        logging.getLogger("consumers.batch_consumer").removeHandler(retries)
        worker.stop.set()
        thread.join(timeout=30)
        engine.dispose()
