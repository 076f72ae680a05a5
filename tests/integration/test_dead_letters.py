"""Dead letters against the real broker: an original of any size reaches the topic (cut to fit, its
size and digest kept), a permanent refusal is never retried, and nothing is sent twice."""

from __future__ import annotations

import hashlib
import logging

import pytest

from consumers.dead_letter import (
    HEADER_KIND,
    HEADER_LETTER_ID,
    HEADER_ORIGINAL_BYTES,
    HEADER_ORIGINAL_KEY_SHA256,
    HEADER_ORIGINAL_SHA256,
    HEADER_TRUNCATED,
    DeadLetter,
    DeadLetterPublisher,
    producer_max_request_size,
)
from consumers.kafka_clients import KafkaOptions, create_producer
from consumers.schema import RejectedMessage
from tests.conftest import Topics
from tests.support.broker_io import read_topic

pytestmark = pytest.mark.integration


def letter(offset: int, value: bytes | None, key: bytes | None = None) -> DeadLetter:
    return DeadLetter("news", 0, offset, key, value, RejectedMessage("oversized", f"message {offset} is too big"))


def publisher(bootstrap: str, topic: str, max_letter_bytes: int, max_request_size: int) -> DeadLetterPublisher:
    producer = create_producer(KafkaOptions(bootstrap, client_id="dlq-test"), max_request_size=max_request_size)
    return DeadLetterPublisher(producer, topic, timeout_s=30, max_letter_bytes=max_letter_bytes)


def test_an_original_over_the_cap_is_cut_to_fit_with_its_size_and_digest(kafka_bootstrap: str, topics: Topics) -> None:
    big, small = b"v" * 300_000, b"small"
    huge_key = b"k" * 5_000
    dead_letters = publisher(kafka_bootstrap, topics.dead_letter, 100_000, producer_max_request_size(100_000))
    dead_letters.publish_all([letter(1, big, huge_key), letter(2, small, b"key")])

    records = {int(dict(r.headers)[HEADER_LETTER_ID].decode().rsplit("/", 1)[1]): r
               for r in read_topic(kafka_bootstrap, topics.dead_letter, expected=2)}
    assert sorted(records) == [1, 2]
    cut, whole = records[1], records[2]
    headers = dict(cut.headers)
    assert headers[HEADER_TRUNCATED] == b"key,value"
    assert int(headers[HEADER_ORIGINAL_BYTES]) == len(big)
    assert headers[HEADER_ORIGINAL_SHA256].decode() == hashlib.sha256(big).hexdigest()
    assert cut.key == hashlib.sha256(huge_key).hexdigest().encode() == headers[HEADER_ORIGINAL_KEY_SHA256]
    assert big.startswith(cut.value) and 90_000 < len(cut.value) < 100_000
    assert whole.value == small and whole.key == b"key" and HEADER_TRUNCATED not in dict(whole.headers)


def test_a_letter_refused_for_good_goes_again_as_headers_only(kafka_bootstrap: str, topics: Topics) -> None:
    """A cap above what the producer (or the topic) takes: the size error is permanent, so the
    letter is not retried as it is but sent once more without its value."""
    dead_letters = publisher(kafka_bootstrap, topics.dead_letter, max_letter_bytes=500_000, max_request_size=50_000)
    dead_letters.publish_all([letter(1, b"v" * 200_000), letter(2, b"fits")])

    records = read_topic(kafka_bootstrap, topics.dead_letter, expected=2)
    by_offset = {int(dict(r.headers)[HEADER_LETTER_ID].decode().rsplit("/", 1)[1]): r for r in records}
    assert sorted(by_offset) == [1, 2], "each letter exactly once"
    headers_only = dict(by_offset[1].headers)
    assert by_offset[1].value == b"" and headers_only[HEADER_TRUNCATED] == b"value"
    assert int(headers_only[HEADER_ORIGINAL_BYTES]) == 200_000 and headers_only[HEADER_KIND] == b"oversized"
    assert by_offset[2].value == b"fits"
    assert dead_letters.lost == 0


def test_a_letter_refused_even_as_headers_is_logged_not_retried(
    kafka_bootstrap: str, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    dead_letters = publisher(kafka_bootstrap, topics.dead_letter, max_letter_bytes=500_000, max_request_size=100)
    with caplog.at_level(logging.ERROR, logger="consumers.dead_letter"):
        dead_letters.publish_all([letter(7, b"v" * 1_000)])  # returns: the batch can be committed
    assert dead_letters.lost == 1
    lost = [record for record in caplog.records if record.getMessage() == "dead_letter_lost"]
    assert len(lost) == 1
    fields = lost[0].kv  # type: ignore[attr-defined]
    assert fields["offset"] == 7 and fields["original_bytes"] == 1_000
    assert fields["original_sha256"] == hashlib.sha256(b"v" * 1_000).hexdigest()
    assert "MessageSizeTooLarge" in fields["error"]
