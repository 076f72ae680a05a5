"""`finsent worker --processes N`: one consumer group of N processes, watched by a supervisor."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from consumers.schema import parse_news
from tests.conftest import Topics
from tests.support.broker_io import produce, wait_until
from tests.support.news_factory import valid_messages
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

PROGRESS_TIMEOUT_S = 240.0


def stored_ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(sa.text("SELECT id FROM articles")).scalars())


def score_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM article_scores")).scalar_one())


def worker_children(group: WorkerProcess) -> list[psutil.Process]:
    assert group.process is not None
    return [child for child in psutil.Process(group.process.pid).children() if child.is_running()
            and child.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def launched() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        if process.running:
            process.send(signal.SIGTERM)
            try:
                process.wait(timeout_s=90)
            except Exception:  # noqa: BLE001 - the test failed already; do not leave processes behind
                process.kill()


def test_two_processes_share_the_stream_survive_a_killed_child_and_stop_on_sigterm(
    worker_environment: dict[str, str], engine: Engine, topics: Topics, kafka_bootstrap: str,
    launched: list[WorkerProcess], tmp_path: Path,
) -> None:
    environment = {**worker_environment, "FINSENT_BATCH_SIZE": "50"}
    group = WorkerProcess(environment, tmp_path / "group.log", arguments=("--processes", "2")).start()
    launched.append(group)
    first, second = valid_messages(600), valid_messages(600, start=600)
    produce(kafka_bootstrap, topics.news, first)
    wait_until(lambda: len(stored_ids(engine)) == len(first), timeout_s=PROGRESS_TIMEOUT_S, what="the first 600 articles")
    children = worker_children(group)
    assert len(children) == 2, group.log_text()
    assert {child.environ().get("FINSENT_TORCH_THREADS") for child in children} == {str(max(1, (psutil.cpu_count() or 1) // 2))}

    children[0].kill()  # SIGKILL one child: the supervisor starts another, the group takes its partitions back
    wait_until(lambda: len(worker_children(group)) == 2 and children[0].pid not in {c.pid for c in worker_children(group)},
               timeout_s=PROGRESS_TIMEOUT_S, what="the killed child to be replaced")
    produce(kafka_bootstrap, topics.news, second)
    expected = {parse_news(value).id for _, value in first + second}
    wait_until(lambda: len(stored_ids(engine)) == len(expected), timeout_s=PROGRESS_TIMEOUT_S, what="all 1200 articles")
    assert stored_ids(engine) == expected
    assert score_count(engine) == len(expected), "each article scored once"

    survivors = worker_children(group)
    group.send(signal.SIGTERM)
    assert group.wait(timeout_s=120) == 0, group.log_text()
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in survivors)
    log = group.log_text()
    assert "event=worker_child_exited" in log and "Traceback" not in log, log[-3000:]


def test_a_child_that_fails_on_its_configuration_stops_the_group_with_that_error(
    worker_environment: dict[str, str], launched: list[WorkerProcess], tmp_path: Path,
) -> None:
    """A permanent error is not retried forever: no broker at that address ends the group with exit 2."""
    environment = {**worker_environment, "FINSENT_KAFKA_BOOTSTRAP": "127.0.0.1:9", "FINSENT_KAFKA_CONNECT_TIMEOUT_MS": "2s"}
    group = WorkerProcess(environment, tmp_path / "group.log", arguments=("--processes", "2")).start()
    launched.append(group)
    assert group.wait(timeout_s=PROGRESS_TIMEOUT_S) == 2, group.log_text()
    log = group.log_text()
    assert "finsent: error:" in log and "127.0.0.1:9" in log and "event=worker_child_failed" in log, log[-3000:]
    assert "Traceback" not in log
