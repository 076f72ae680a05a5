"""The hostile-producer drill: valid news mixed with every kind of bad message a hostile or broken
producer sends, consumed by two `finsent worker` processes in one group on the real broker and
PostgreSQL. Every valid message is stored once; every hostile one is stored correctly or
dead-lettered exactly once with its reason; both workers live on; every partition is committed
to its end."""

from __future__ import annotations

import hashlib
import json
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine

from consumers.dead_letter import (
    HEADER_KIND,
    HEADER_LETTER_ID,
    HEADER_ORIGINAL_BYTES,
    HEADER_ORIGINAL_SHA256,
    HEADER_REASON,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_TRUNCATED,
)
from consumers.kafka_clients import KafkaOptions, create_producer
from consumers.schema import NewsItem, parse_news
from tests.conftest import TEST_PARTITIONS, Topics
from tests.support.broker_io import read_topic, wait_until
from tests.support.news_factory import valid_messages
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

GOOD = {"published_at": "2026-03-02T14:30:00Z", "headline": "Drill headline", "source": "drill"}
HEADER = b'{"published_at": "2026-03-02T14:30:00Z", "headline": "x", '
VALID_COUNT = 400


def good(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


@dataclass(frozen=True)
class Hostile:
    label: str
    value: bytes | None
    reject: str | None
    """The dead-letter kind expected, or None when the message must be stored as it is."""
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    headline: str | None = None
    """For stored ones: the headline that must be stored."""


def hostile_messages() -> list[Hostile]:
    huge_body = "x" * 1_500_000
    return [
        Hostile("not json", b"{this is not json", "not_json"),
        Hostile("trailing garbage", good() + b" and more", "not_json"),
        Hostile("invalid utf-8", b'{"published_at": "2026-03-02T14:30:00Z", "headline": "caf\xe9"}', "bad_encoding"),
        Hostile("utf-16 json", good().decode().encode("utf-16"), "bad_encoding"),
        Hostile("json list", b'["a", "list"]', "not_object"),
        Hostile("json scalar", b"42", "not_object"),
        Hostile("empty value", b"", "empty"),
        Hostile("tombstone", None, "empty", key=b"tombstone-key"),
        Hostile("no published_at", json.dumps({"headline": "no time"}).encode(), "missing_field"),
        Hostile("published_at words", good(published_at="yesterday afternoon"), "bad_timestamp"),
        Hostile("published_at naive", good(published_at="2026-03-02T14:30:00"), "bad_timestamp"),
        Hostile("published_at number", good(published_at=1772461800), "wrong_type"),
        Hostile("published_at object", good(published_at={"t": 1}), "wrong_type"),
        Hostile("offset of 25 hours", good(published_at="2026-03-02T14:30:00+25:00"), "bad_timestamp"),
        Hostile("year 1 in UTC", good(published_at="0001-01-01T00:30:00+01:00"), "bad_timestamp"),
        Hostile("year 9999 in UTC", good(published_at="9999-12-31T23:30:00-01:00"), "bad_timestamp"),
        Hostile("far future", good(published_at="2999-01-01T00:00:00Z"), "bad_timestamp"),
        Hostile("unix epoch placeholder", good(published_at="1970-01-01T00:00:00Z"), "bad_timestamp"),
        Hostile("headline number", good(headline=42), "wrong_type"),
        Hostile("headline object", good(headline={"text": "x"}), "wrong_type"),
        Hostile("body list", good(body=["a"]), "wrong_type"),
        Hostile("blank text", good(headline="   ", body=""), "empty_text"),
        Hostile("tickers string", good(tickers="AAPL"), "wrong_type"),
        Hostile("tickers with a number", good(tickers=["AAPL", 7]), "wrong_type"),
        Hostile("ticker with spaces", good(tickers=["not a ticker!"]), "bad_ticker"),
        Hostile("ticker in cyrillic", good(tickers=["АAPL"]), "bad_ticker"),
        Hostile("10,000 tickers", good(tickers=[f"T{i}" for i in range(10_000)]), "too_long"),
        Hostile("huge headline", good(headline="h" * 50_000), "too_long"),
        Hostile("huge body", good(body="b" * 300_000), "too_long"),
        Hostile("id of 300 characters", good(id="i" * 300), "too_long"),
        Hostile("id number", good(id=12345), "wrong_type"),
        Hostile("NUL in headline", good(headline="bad\u0000byte"), "bad_encoding"),
        Hostile("lone surrogate without id", HEADER.replace(b'"x"', b'"a\\ud800b"') + b'"source": "drill"}', "bad_encoding"),
        Hostile("lone surrogate in id", good(id="\udc00"), "bad_encoding"),
        Hostile("integer of 5000 digits", HEADER + b'"n": ' + b"9" * 5000 + b"}", "not_json"),
        Hostile("NaN literal", HEADER + b'"score": NaN}', "not_json"),
        Hostile("Infinity literal", HEADER + b'"score": -Infinity}', "not_json"),
        Hostile("duplicate keys", b'{"published_at": "2026-03-02T14:30:00Z", "headline": "a", "headline": "b"}', "duplicate_key"),
        Hostile("deep nesting", HEADER + b'"deep": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "not_json"),
        Hostile("oversized", good(body="o" * 1_100_000), "oversized"),
        Hostile("oversized past the dead-letter cap", good(body=huge_body), "oversized"),
        Hostile("byte order mark", b"\xef\xbb\xbf" + good(id="drill-bom", headline="BOM headline"), None, headline="BOM headline"),
        Hostile("escape sequences", good(id="drill-esc", headline="\x1b[2J\x07Screen cleared\r"), None,
                headline="\x1b[2J\x07Screen cleared"),
        Hostile("bidi override", good(id="drill-bidi", headline="Shares \u202eevif\u202c up"), None,
                headline="Shares \u202eevif\u202c up"),
        Hostile("line separator", good(id="drill-ls", headline="One\u2028level=error forged"), None,
                headline="One\u2028level=error forged"),
        Hostile("garbage headers", good(id="drill-headers", headline="Headers are garbage"), None,
                headers=(("\u0000x", b"\xff\xfe"), ("finsent-reason", b"forged"), ("", b"")), headline="Headers are garbage"),
        Hostile("non-utf-8 key", good(id="drill-key", headline="The key is not text"), None, key=b"\xff\xfe\x00key",
                headline="The key is not text"),
        Hostile("huge key", good(id="drill-big-key", headline="The key is huge"), None, key=b"k" * 200_000,
                headline="The key is huge"),
        Hostile("unknown fields", good(id="drill-extra", headline="Extra fields ride along", extra={"a": [1, None]}), None,
                headline="Extra fields ride along"),
        Hostile("same id, first", good(id="drill-twin", headline="First version", tickers=["AAPL"]), None,
                headline="First version"),
        Hostile("same id, second", good(id="drill-twin", headline="Second version", tickers=["TSLA"]), None,
                headline="First version"),
    ]


@dataclass(frozen=True)
class Sent:
    partition: int
    offset: int


def produce_on_partitions(bootstrap: str, topic: str, stream: list[tuple[Hostile | None, bytes | None, bytes | None]]) -> list[Sent]:
    """Send the stream round-robin over the partitions (the same-id pair on one partition, in order)."""
    producer = create_producer(KafkaOptions(bootstrap, client_id="drill-producer"), max_request_size=4 * 1024 * 1024)
    futures = []
    for index, (hostile, key, value) in enumerate(stream):
        partition = 0 if hostile is not None and hostile.label.startswith("same id") else index % TEST_PARTITIONS
        headers = list(hostile.headers) if hostile is not None else []
        futures.append(producer.send(topic, key=key, value=value, partition=partition, headers=headers))
    producer.flush()
    sent = [Sent(metadata.partition, metadata.offset) for metadata in (future.get(timeout=60) for future in futures)]
    producer.close()
    return sent


def committed_offsets(bootstrap: str, group: str, partitions: list[TopicPartition]) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group, enable_auto_commit=False)
    try:
        return {tp.partition: consumer.committed(tp) for tp in partitions}
    finally:
        consumer.close(autocommit=False)


def test_two_workers_survive_the_hostile_drill(
    worker_environment: dict[str, str], engine: Engine, topics: Topics, kafka_bootstrap: str, tmp_path: Path
) -> None:
    hostile = hostile_messages()
    assert len(hostile) >= 40
    valid = valid_messages(VALID_COUNT)
    stream: list[tuple[Hostile | None, bytes | None, bytes | None]] = [(None, key, value) for key, value in valid]
    step = VALID_COUNT // len(hostile)
    for position, message in enumerate(hostile):
        stream.insert(position * (step + 1) + step // 2, (message, message.key, message.value))

    workers = [WorkerProcess(worker_environment, tmp_path / f"worker-{n}.log").start() for n in range(2)]
    try:
        sent = produce_on_partitions(kafka_bootstrap, topics.news, stream)
        ends = {p: 1 + max(s.offset for s in sent if s.partition == p) for p in range(TEST_PARTITIONS)}
        partitions = [TopicPartition(topics.news, p) for p in range(TEST_PARTITIONS)]

        def caught_up() -> bool:
            assert all(worker.running for worker in workers), "a worker died: " + " | ".join(w.log_text()[-3000:] for w in workers)
            return committed_offsets(kafka_bootstrap, topics.group, partitions) == ends

        wait_until(caught_up, timeout_s=480, interval_s=2, what=f"committed offsets at the end of every partition {ends}")
    finally:
        for worker in workers:
            if worker.running:
                worker.send(signal.SIGTERM)
        codes = [worker.wait(60) for worker in workers]
    assert codes == [0, 0]

    rejected = [(message, where) for (message, _, _), where in zip(stream, sent, strict=True) if message and message.reject]
    letters = read_topic(kafka_bootstrap, topics.dead_letter, expected=len(rejected))
    by_source = {}
    for letter in letters:
        headers = dict(letter.headers)
        source = (int(headers[HEADER_SOURCE_PARTITION]), int(headers[HEADER_SOURCE_OFFSET]))
        assert source not in by_source, f"one letter per message, {source} twice"
        by_source[source] = (letter, headers)
    assert len(by_source) == len(rejected), "every hostile message dead-lettered exactly once"
    for message, where in rejected:
        letter, headers = by_source[(where.partition, where.offset)]
        assert headers[HEADER_KIND].decode() == message.reject, f"{message.label}: {headers[HEADER_REASON]!r}"
        assert headers[HEADER_REASON], message.label
        assert headers[HEADER_LETTER_ID].decode() == f"{topics.news}/{where.partition}/{where.offset}"
        if message.value is not None and len(message.value) > 1_000_000:
            assert headers[HEADER_TRUNCATED] == b"value", message.label
            assert int(headers[HEADER_ORIGINAL_BYTES]) == len(message.value)
            assert message.value.startswith(letter.value) and len(letter.value) > 900_000
        else:
            assert letter.value == message.value, f"{message.label}: original bytes kept"
        if message.value is not None:
            assert headers[HEADER_ORIGINAL_SHA256].decode() == hashlib.sha256(message.value).hexdigest()

    expected_valid = {parse_news(value).id for _, value in valid}
    stored_hostile = {m.label: m for m in hostile if m.reject is None}
    with engine.connect() as connection:
        rows = dict(connection.execute(sa.text("SELECT id, headline FROM articles")).all())
        twin_entities = set(connection.execute(sa.text(
            "SELECT entity FROM article_entities WHERE article_id = 'drill-twin'")).scalars())
    hostile_ids = {}
    for message in stored_hostile.values():
        item = parse_news(message.value)
        assert isinstance(item, NewsItem), message.label
        hostile_ids[item.id] = message
    assert set(rows) == expected_valid | set(hostile_ids), "every valid message stored, once (ids are the primary key)"
    for article_id, message in hostile_ids.items():
        assert rows[article_id] == message.headline, message.label
    assert twin_entities == {"AAPL", "MARKET"}, "same id: the first message wins, mentions included"
