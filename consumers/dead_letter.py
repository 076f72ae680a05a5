"""Dead-letter publishing: the original bytes plus why and where they came from, in headers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka.errors import KafkaError

from consumers.schema import RejectedMessage

log = logging.getLogger(__name__)

HEADER_REASON = "finsent-reason"
HEADER_KIND = "finsent-reject-kind"
HEADER_SOURCE_TOPIC = "finsent-source-topic"
HEADER_SOURCE_PARTITION = "finsent-source-partition"
HEADER_SOURCE_OFFSET = "finsent-source-offset"
MAX_REASON_BYTES = 2_000


class DeadLetterUnavailable(Exception):
    """The dead-letter topic could not be written: an infrastructure failure, retried like one."""


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    rejection: RejectedMessage

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (HEADER_REASON, self.rejection.reason.encode("utf-8")[:MAX_REASON_BYTES]),
            (HEADER_KIND, self.rejection.kind.encode("utf-8")),
            (HEADER_SOURCE_TOPIC, self.topic.encode("utf-8")),
            (HEADER_SOURCE_PARTITION, str(self.partition).encode("ascii")),
            (HEADER_SOURCE_OFFSET, str(self.offset).encode("ascii")),
        ]


class DeadLetterPublisher:
    """Sends rejected messages and waits for the broker's acknowledgement before offsets move on."""

    def __init__(self, producer: KafkaProducer, topic: str, timeout_s: float = 30.0) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s

    @property
    def topic(self) -> str:
        return self._topic

    def publish_all(self, letters: Sequence[DeadLetter]) -> None:
        """Publish and wait for every ack; raises DeadLetterUnavailable if any send failed."""
        if not letters:
            return
        try:
            futures = [
                self._producer.send(self._topic, key=letter.key, value=letter.value, headers=letter.headers())
                for letter in letters
            ]
            self._producer.flush(timeout=self._timeout_s)
            for future in futures:
                future.get(timeout=self._timeout_s)
        except KafkaError as error:
            raise DeadLetterUnavailable(f"cannot write to dead-letter topic {self._topic}: {error}") from error
        for letter in letters:
            log.warning(
                "dead_lettered",
                extra={
                    "kv": {
                        "topic": letter.topic,
                        "partition": letter.partition,
                        "offset": letter.offset,
                        "kind": letter.rejection.kind,
                        "reason": letter.rejection.reason,
                    }
                },
            )
