"""Real infrastructure for the suite: a Kafka-protocol broker and a PostgreSQL, started here.

FINSENT_TEST_KAFKA=host:port and FINSENT_TEST_DATABASE_URL=postgresql://... point the suite at
external ones instead (the database's finsent tables are truncated between tests: use a scratch one).
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from consumers.embedded_broker import EmbeddedBroker
from consumers.kafka_clients import KafkaOptions, ensure_topics
from pipeline.config import Settings
from storage.embedded import EmbeddedPostgres
from storage.engine import make_engine
from storage.migrate import upgrade
from storage.reset import empty_all_tables

INTEGRATION_DIR = Path(__file__).parent / "integration"
TEST_PARTITIONS = 4
# Real Kafka's minimum session timeout; group joins take about half of it on Tansu.
TEST_SESSION_TIMEOUT_MS = 6000
TEST_HEARTBEAT_INTERVAL_MS = 1000


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background of a script (`make test &` without job control) inherits
    SIGINT ignored, and so does every command it starts: the Ctrl-C tests (130 on SIGINT) would
    fail for the shell's sake. Tests signal their commands as a terminal would, so Python's default
    is put back (an ignored signal is inherited across exec, a handled one is reset to default)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("FINSENT_TEST_KAFKA", "").strip()
    if external:
        yield external
        return
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "tansu.log")
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def embedded_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres | None]:
    if os.environ.get("FINSENT_TEST_DATABASE_URL", "").strip():
        yield None
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres"), delete_on_exit=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(embedded_postgres: EmbeddedPostgres | None) -> Iterator[str]:
    url = os.environ.get("FINSENT_TEST_DATABASE_URL", "").strip()
    if embedded_postgres is not None:
        url = embedded_postgres.start()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a database whose finsent tables are empty."""
    engine = make_engine(database_url)
    empty_all_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def empty_database(database_url: str) -> Iterator[Engine]:
    """A scratch database on the test server with no tables at all (for migration tests)."""
    name = f"finsent_empty_{uuid.uuid4().hex[:8]}"
    admin = make_engine(database_url)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.ProgrammingError as error:
        pytest.skip(f"cannot create a scratch database on the test server: {error}")
    engine = make_engine(make_url(database_url).set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'DROP DATABASE "{name}"'))
    admin.dispose()


@dataclass(frozen=True)
class Topics:
    news: str
    dead_letter: str
    alerts: str
    group: str


@pytest.fixture
def topics(kafka_bootstrap: str) -> Topics:
    """Fresh topics (4 partitions) and consumer group for one test."""
    suffix = uuid.uuid4().hex[:10]
    names = Topics(f"news-{suffix}", f"news-{suffix}.dlq", f"alerts-{suffix}", f"finsent-test-{suffix}")
    ensure_topics(KafkaOptions(kafka_bootstrap), [names.news, names.dead_letter, names.alerts], TEST_PARTITIONS)
    return names


def settings_environment(kafka_bootstrap: str, database_url: str, topics: Topics, data_dir: Path) -> dict[str, str]:
    """FINSENT_* variables for a worker (in-process or subprocess) on the test infrastructure."""
    return {
        "FINSENT_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "FINSENT_DATABASE_URL": database_url,
        "FINSENT_TOPIC_NEWS": topics.news,
        "FINSENT_TOPIC_DEAD_LETTER": topics.dead_letter,
        "FINSENT_TOPIC_ALERTS": topics.alerts,
        "FINSENT_CONSUMER_GROUP": topics.group,
        "FINSENT_TOPIC_PARTITIONS": str(TEST_PARTITIONS),
        "FINSENT_KAFKA_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
        "FINSENT_KAFKA_HEARTBEAT_INTERVAL_MS": str(TEST_HEARTBEAT_INTERVAL_MS),
        "FINSENT_BATCH_MAX_WAIT_MS": "200",
        "FINSENT_MODEL_LANES": "2",  # the default on 2 cores, pinned: the suite exercises two lanes on any machine with 2+
        "FINSENT_DATA_DIR": str(data_dir),
    }


@pytest.fixture
def worker_environment(kafka_bootstrap: str, database_url: str, topics: Topics, engine: Engine, tmp_path: Path) -> dict[str, str]:
    return settings_environment(kafka_bootstrap, database_url, topics, tmp_path / "data")


@pytest.fixture
def settings(worker_environment: dict[str, str]) -> Settings:
    return Settings.load(worker_environment)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration/ carries the integration mark: `pytest -m "not integration"` runs the unit tests alone."""
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
