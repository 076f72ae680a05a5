"""The worker against the real broker and PostgreSQL: every valid article once, every bad one dead-lettered."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from consumers.dead_letter import HEADER_KIND, HEADER_REASON, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION, HEADER_SOURCE_TOPIC
from consumers.schema import parse_news
from pipeline.config import Settings
from pipeline.worker import Worker
from tests.conftest import TEST_PARTITIONS, Topics
from tests.support.broker_io import produce, read_topic, wait_until
from tests.support.news_factory import malformed_messages, valid_messages

pytestmark = pytest.mark.integration

VALID_COUNT = 5000
MAX_MESSAGE_BYTES = 65_536


class RunningWorker:
    def __init__(self, settings: Settings) -> None:
        self.worker = Worker(settings)
        self.worker.start()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as error:  # noqa: BLE001 - surfaced to the test
            self.error = error

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.worker.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "worker did not stop within 30s of the stop request"
        assert self.error is None, f"worker failed: {self.error!r}"


@pytest.fixture
def running_worker(settings: Settings) -> Iterator[RunningWorker]:
    running = RunningWorker(settings.replace(max_message_bytes=MAX_MESSAGE_BYTES))
    yield running
    running.stop()


def table_snapshot(engine: Engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        return {
            "articles": connection.execute(sa.text(
                "SELECT id, published_at, headline, body, source, url, lang, ingested_at FROM articles ORDER BY id")).all(),
            "article_entities": connection.execute(sa.text("SELECT * FROM article_entities ORDER BY article_id, entity")).all(),
            "article_scores": connection.execute(sa.text("SELECT * FROM article_scores ORDER BY article_id, model_version")).all(),
            "buckets": connection.execute(sa.text(
                "SELECT entity, width_seconds, bucket_start, model_version, article_count, mean_p_negative, mean_p_neutral, "
                "mean_p_positive, negative_share, mean_sentiment, emotion_index FROM buckets "
                "ORDER BY entity, width_seconds, bucket_start")).all(),
        }


def count_articles(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM articles")).scalar_one())


def test_valid_articles_stored_once_and_every_malformed_message_dead_lettered(
    running_worker: RunningWorker, engine: Engine, topics: Topics, kafka_bootstrap: str
) -> None:
    valid = valid_messages(VALID_COUNT)
    malformed = malformed_messages(MAX_MESSAGE_BYTES)
    stream: list[tuple[bytes | None, bytes | None]] = []
    bad_positions = {}
    step = VALID_COUNT // len(malformed)
    for index, (key, value) in enumerate(valid):
        stream.append((key, value))
        if index % step == 0 and index // step < len(malformed):
            label = list(malformed)[index // step]
            bad_positions[label] = len(stream)
            stream.append((label.encode(), malformed[label]))
    produce(kafka_bootstrap, topics.news, stream, partition_of=lambda i: i % TEST_PARTITIONS)

    wait_until(lambda: count_articles(engine) == VALID_COUNT, timeout_s=180, what=f"{VALID_COUNT} articles")
    letters = read_topic(kafka_bootstrap, topics.dead_letter, expected=len(malformed))
    assert running_worker.alive

    by_label = {record.key.decode(): record for record in letters}
    assert sorted(by_label) == sorted(malformed), "each malformed message dead-lettered exactly once"
    for label, record in by_label.items():
        headers = {name: value.decode() for name, value in record.headers}
        assert record.value == malformed[label], f"{label}: original bytes kept"
        assert headers[HEADER_REASON], f"{label}: has a reason"
        assert headers[HEADER_KIND] in {"not_json", "bad_encoding", "not_object", "empty", "missing_field",
                                        "bad_timestamp", "wrong_type", "empty_text", "bad_ticker", "oversized"}
        assert headers[HEADER_SOURCE_TOPIC] == topics.news
        partition, offset = int(headers[HEADER_SOURCE_PARTITION]), int(headers[HEADER_SOURCE_OFFSET])
        assert partition == bad_positions[label] % TEST_PARTITIONS
        assert offset == bad_positions[label] // TEST_PARTITIONS

    expected_ids = {parse_news(value).id for _, value in valid}
    with engine.connect() as connection:
        stored_ids = set(connection.execute(sa.text("SELECT id FROM articles")).scalars())
        market_mentions = connection.execute(sa.text("SELECT count(*) FROM article_entities WHERE entity = 'MARKET'")).scalar_one()
    assert stored_ids == expected_ids
    assert market_mentions == VALID_COUNT


def test_replaying_the_whole_topic_changes_nothing(
    settings: Settings, engine: Engine, topics: Topics, kafka_bootstrap: str
) -> None:
    produce(kafka_bootstrap, topics.news, valid_messages(800) + [(None, b"not json")])
    first = RunningWorker(settings)
    wait_until(lambda: count_articles(engine) == 800, timeout_s=120, what="first pass")
    first.stop()
    before = table_snapshot(engine)
    assert before["article_scores"] and before["buckets"], "the first pass must have scored and bucketed"

    replay_settings = settings.replace(consumer_group=topics.group + "-replay")
    second = RunningWorker(replay_settings)
    wait_until(lambda: len(read_topic(kafka_bootstrap, topics.dead_letter, expected=2, idle_s=0.5)) >= 2,
               timeout_s=120, what="the replay to reach the end of the topic")
    second.stop()
    assert table_snapshot(engine) == before


def test_workers_joining_and_leaving_the_group_store_everything_once(
    settings: Settings, engine: Engine, topics: Topics, kafka_bootstrap: str
) -> None:
    small_batches = settings.replace(batch_size=25)
    messages = valid_messages(3000)
    produce(kafka_bootstrap, topics.news, messages[:1500])
    first = RunningWorker(small_batches)
    wait_until(lambda: count_articles(engine) >= 200, timeout_s=120, what="the first worker to start storing")
    second = RunningWorker(small_batches)  # joins the group: partitions are rebalanced mid-stream
    # Leave only once the group is stable again: Tansu (unlike Kafka) keeps a member that leaves
    # in the middle of a rebalance as the group leader, and the group never settles.
    wait_until(lambda: first.worker.assignment() and second.worker.assignment(), timeout_s=60,
               what="both workers to own partitions")
    produce(kafka_bootstrap, topics.news, messages[1500:])
    wait_until(lambda: count_articles(engine) >= 1800, timeout_s=120, what="the shared group to make progress")
    first.stop()  # leaves the group: its partitions move to the second worker
    wait_until(lambda: count_articles(engine) == 3000, timeout_s=180, what="all 3000 articles")
    second.stop()
    with engine.connect() as connection:
        stored = set(connection.execute(sa.text("SELECT id FROM articles")).scalars())
    assert stored == {parse_news(value).id for _, value in messages}
