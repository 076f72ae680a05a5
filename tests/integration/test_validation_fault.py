"""A bug in validation costs one message, not the worker: the batch consumer dead-letters the
message whose validation raised and carries on with the rest (real broker)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

import consumers.batch_consumer as batch_consumer
from consumers.batch_consumer import BatchConsumer
from consumers.dead_letter import HEADER_KIND, HEADER_REASON, DeadLetterPublisher
from consumers.kafka_clients import KafkaOptions, create_consumer, create_producer
from consumers.schema import NewsItem, RejectedMessage, parse_news
from tests.conftest import TEST_HEARTBEAT_INTERVAL_MS, TEST_SESSION_TIMEOUT_MS, Topics
from tests.support.broker_io import produce, read_topic, wait_until
from tests.support.news_factory import valid_messages

pytestmark = pytest.mark.integration

TRIGGER = json.dumps({"published_at": "2026-03-02T14:30:00Z", "headline": "validation bug trigger"}).encode()


def test_an_exception_inside_validation_dead_letters_that_message_only(
    kafka_bootstrap: str, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    def parse_with_a_bug(value: bytes | None, *args: object) -> NewsItem | RejectedMessage:
        if value == TRIGGER:
            raise RuntimeError("a validation bug")
        return parse_news(value, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(batch_consumer, "parse_news", parse_with_a_bug)
    messages = valid_messages(20)
    produce(kafka_bootstrap, topics.news, messages[:10] + [(b"bug", TRIGGER)] + messages[10:])
    options = KafkaOptions(kafka_bootstrap, session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
                           heartbeat_interval_ms=TEST_HEARTBEAT_INTERVAL_MS)
    stored: list[NewsItem] = []

    def keep(items: Sequence[NewsItem]) -> None:
        stored.extend(items)

    consumer = BatchConsumer(create_consumer(options, topics.group), topics.news, keep,
                             DeadLetterPublisher(create_producer(options), topics.dead_letter), max_wait_ms=1000)
    try:
        wait_until(lambda: consumer.run_once() and len(stored) == 20, timeout_s=120, what="20 stored")
    finally:
        consumer.close()
    [letter] = read_topic(kafka_bootstrap, topics.dead_letter, expected=1)
    headers = dict(letter.headers)
    assert letter.key == b"bug" and letter.value == TRIGGER
    assert headers[HEADER_KIND] == b"validation_error" and b"a validation bug" in headers[HEADER_REASON]
