"""Dead-letter publishing: the original bytes plus why and where they came from, in headers.

Every letter reaches the topic, whatever its size:
- a letter is capped at `max_letter_bytes` (key + value + headers; default under Kafka's default
  1 MiB record limit): a longer original is cut to fit, and the headers keep its full size and
  sha256 so a reader can tell and fetch the original from the source topic/partition/offset;
- a key longer than `MAX_KEY_BYTES` is replaced by its sha256 (header `finsent-original-key-sha256`);
- if the broker still refuses the letter for good (its topic's limit is smaller), a letter of
  headers only is sent; if that is refused for good too (say, no write permission on the topic),
  the letter is logged as `dead_letter_lost` with all its metadata and the batch moves on:
  permanent errors are never retried;
- retriable failures (broker down, timeouts) raise `DeadLetterUnavailable` with the letters not
  yet acknowledged, so the caller retries those only: a retried batch re-sends no letter the
  broker already acknowledged. A crash between the send and the offset commit can still send a
  letter twice; the `finsent-letter-id` header (source topic/partition/offset) lets a reader drop
  the copy.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.errors import IllegalStateError, KafkaError

from consumers.schema import RejectedMessage

log = logging.getLogger(__name__)

HEADER_REASON = "finsent-reason"
HEADER_KIND = "finsent-reject-kind"
HEADER_SOURCE_TOPIC = "finsent-source-topic"
HEADER_SOURCE_PARTITION = "finsent-source-partition"
HEADER_SOURCE_OFFSET = "finsent-source-offset"
HEADER_LETTER_ID = "finsent-letter-id"
HEADER_ORIGINAL_BYTES = "finsent-original-bytes"
HEADER_ORIGINAL_SHA256 = "finsent-original-sha256"
HEADER_ORIGINAL_KEY_SHA256 = "finsent-original-key-sha256"
HEADER_TRUNCATED = "finsent-truncated"
MAX_REASON_BYTES = 2_000
MAX_KEY_BYTES = 1_024
DEFAULT_MAX_LETTER_BYTES = 1_000_000
"""Kafka's default record limit (message.max.bytes) is 1,048,588 bytes per record batch; a letter
stays under 1 MB so the batch framing and the producer's own estimate fit beside it."""
PRODUCER_HEADROOM_BYTES = 16_384
"""What the producer's max_request_size allows on top of a letter: its size estimate adds framing."""


class DeadLetterUnavailable(Exception):
    """The dead-letter topic could not be written for now: an infrastructure failure, retried like one.

    `unsent` holds the letters the broker has not acknowledged; only those need sending again."""

    def __init__(self, message: str, unsent: Sequence[DeadLetter]) -> None:
        super().__init__(message)
        self.unsent = list(unsent)


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    rejection: RejectedMessage

    @property
    def letter_id(self) -> str:
        """Where the original sits: the idempotency key of this letter."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            (HEADER_REASON, self.rejection.reason.encode("utf-8", "backslashreplace")[:MAX_REASON_BYTES]),
            (HEADER_KIND, self.rejection.kind.encode("utf-8", "backslashreplace")),
            (HEADER_SOURCE_TOPIC, self.topic.encode("utf-8")),
            (HEADER_SOURCE_PARTITION, str(self.partition).encode("ascii")),
            (HEADER_SOURCE_OFFSET, str(self.offset).encode("ascii")),
            (HEADER_LETTER_ID, self.letter_id.encode("utf-8")),
            (HEADER_ORIGINAL_BYTES, str(len(self.value) if self.value is not None else -1).encode("ascii")),
        ]
        if self.value is not None:
            headers.append((HEADER_ORIGINAL_SHA256, hashlib.sha256(self.value).hexdigest().encode("ascii")))
        return headers

    def envelope(self, max_bytes: int, *, with_value: bool = True) -> Envelope:
        """The record to send: headers, then the key and as much of the value as fits in `max_bytes`."""
        headers = self.headers()
        key = self.key
        truncated: list[str] = []
        if key is not None and len(key) > MAX_KEY_BYTES:
            headers.append((HEADER_ORIGINAL_KEY_SHA256, hashlib.sha256(key).hexdigest().encode("ascii")))
            key = hashlib.sha256(key).hexdigest().encode("ascii")
            truncated.append("key")
        value = self.value
        room = max(0, max_bytes - len(key or b"") - _headers_size(headers) - len(HEADER_TRUNCATED) - 16)
        if value is not None and (len(value) > room or not with_value):
            value = value[:room] if with_value else b""
            truncated.append("value")
        if truncated:
            headers.append((HEADER_TRUNCATED, ",".join(truncated).encode("ascii")))
        return Envelope(key, value, headers)


@dataclass(frozen=True)
class Envelope:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class DeadLetterPublisher:
    """Sends rejected messages and waits for the broker's acknowledgement before offsets move on."""

    def __init__(
        self,
        producer: KafkaProducer,
        topic: str,
        timeout_s: float = 30.0,
        max_letter_bytes: int = DEFAULT_MAX_LETTER_BYTES,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s
        self._max_letter_bytes = max_letter_bytes
        self.lost = 0
        """Letters the broker refused for good and that only the log holds (`dead_letter_lost`)."""

    @property
    def topic(self) -> str:
        return self._topic

    def publish_all(self, letters: Sequence[DeadLetter]) -> None:
        """Publish and wait for every ack; raises DeadLetterUnavailable with the unacknowledged ones."""
        if not letters:
            return
        failures = self._send(letters, with_value=True)
        refused = [letter for letter in letters if _is_permanent(failures.get(letter.letter_id))]
        if refused:
            for letter in refused:
                del failures[letter.letter_id]
            failures.update(self._send(refused, with_value=False))
        unsent: list[DeadLetter] = []
        for letter in letters:
            error = failures.get(letter.letter_id)
            if error is None:
                _log_letter("dead_lettered", logging.WARNING, letter)
            elif _is_permanent(error):
                self.lost += 1
                _log_letter("dead_letter_lost", logging.ERROR, letter, error)
            else:
                unsent.append(letter)
        if unsent:
            first = failures[unsent[0].letter_id]
            raise DeadLetterUnavailable(
                f"cannot write {len(unsent)} letter(s) to dead-letter topic {self._topic}: {first}", unsent
            )

    def _send(self, letters: Sequence[DeadLetter], *, with_value: bool) -> dict[str, BaseException]:
        """Send the letters; returns the failure of each one that was not acknowledged."""
        failures: dict[str, BaseException] = {}
        futures: list[tuple[DeadLetter, Any]] = []
        for letter in letters:
            envelope = letter.envelope(self._max_letter_bytes, with_value=with_value)
            try:
                futures.append((letter, self._producer.send(
                    self._topic, key=envelope.key, value=envelope.value, headers=envelope.headers)))
            except KafkaError as error:
                failures[letter.letter_id] = error
        try:
            self._producer.flush(timeout=self._timeout_s)
        except KafkaError:
            pass  # each future below reports its own outcome
        for letter, future in futures:
            try:
                future.get(timeout=self._timeout_s)
            except KafkaError as error:
                failures[letter.letter_id] = error
        return failures


def producer_max_request_size(max_letter_bytes: int) -> int:
    """The dead-letter producer's max_request_size: every capped letter passes its size check."""
    return max_letter_bytes + PRODUCER_HEADROOM_BYTES


def _is_permanent(error: BaseException | None) -> bool:
    """Errors the broker will give again however often the letter is sent (size, permissions)."""
    if error is None:
        return False
    return not getattr(error, "retriable", False) and not isinstance(error, IllegalStateError)


def _headers_size(headers: list[tuple[str, bytes]]) -> int:
    return sum(len(name.encode("utf-8")) + len(value) + 8 for name, value in headers)


def _log_letter(event: str, level: int, letter: DeadLetter, error: BaseException | None = None) -> None:
    fields: dict[str, object] = {
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "kind": letter.rejection.kind,
        "reason": letter.rejection.reason,
    }
    if error is not None:
        fields["original_bytes"] = len(letter.value) if letter.value is not None else -1
        fields["original_sha256"] = hashlib.sha256(letter.value).hexdigest() if letter.value is not None else ""
        fields["error"] = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    log.log(level, event, extra={"kv": fields})
