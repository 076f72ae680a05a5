"""Poll -> validate -> sink -> commit, with at-least-once delivery and idempotent sinks in mind.

Guarantees:
- offsets are committed only after the sink returned (its transaction committed) and every
  rejected message of the batch is acknowledged on the dead-letter topic;
- bad input is dead-lettered with a reason and never stops the loop (an unexpected exception
  from validation dead-letters that one message as `validation_error`);
- `SinkUnavailable` (database down) is retried with backoff, nothing is dead-lettered or committed;
  once the sink has a batch it is not called again for it, and a dead-letter retry re-sends only
  the letters the broker has not acknowledged;
- any other sink exception is narrowed down by splitting the batch, so only the message that the
  sink keeps refusing is dead-lettered;
- a failed commit (rebalance, broker hiccup) rewinds to the batch start: the batch is processed
  again and the idempotent sink makes that harmless;
- records of partitions revoked while a batch was being filled are dropped, not written.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from consumers.dead_letter import DeadLetter, DeadLetterPublisher, DeadLetterUnavailable
from consumers.schema import NewsItem, RejectedMessage, TimeWindow, parse_news

log = logging.getLogger(__name__)

_LAG_TIMEOUT_MS = 1000


class SinkUnavailable(Exception):
    """Raised by a sink for infrastructure failures: the batch is retried, never dead-lettered."""


Sink = Callable[[Sequence[NewsItem]], None]


@dataclass(frozen=True)
class RetryPolicy:
    initial_delay_s: float = 0.5
    max_delay_s: float = 30.0
    multiplier: float = 2.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter in the upper half, so replicas do not retry in step."""
        ceiling = min(self.max_delay_s, self.initial_delay_s * self.multiplier ** max(0, attempt - 1))
        return ceiling * (0.5 + random.random() / 2)


@dataclass
class BatchReport:
    """What one batch did; the worker logs it and feeds metrics from it."""

    consumed: int = 0
    stored: int = 0
    dead_lettered: int = 0
    retries: int = 0
    committed: bool = False
    duration_s: float = 0.0
    lag: int | None = None
    offsets: dict[TopicPartition, int] = field(default_factory=dict)


class _RevocationTracker(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.revoked: set[TopicPartition] = set()

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self.revoked.update(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.revoked.difference_update(assigned)
        log.info(
            "partitions_assigned",
            extra={"kv": {"partitions": ",".join(f"{tp.topic}:{tp.partition}" for tp in sorted(assigned)) or "none"}},
        )


class BatchConsumer:
    def __init__(
        self,
        consumer: KafkaConsumer,
        topic: str,
        sink: Sink,
        dead_letters: DeadLetterPublisher,
        *,
        batch_size: int = 256,
        max_wait_ms: int = 500,
        max_message_bytes: int = 1_048_576,
        time_window: TimeWindow | None = None,
        retry: RetryPolicy = RetryPolicy(),
        stop: threading.Event | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._sink = sink
        self._dead_letters = dead_letters
        self._batch_size = batch_size
        self._max_wait_s = max_wait_ms / 1000
        self._max_message_bytes = max_message_bytes
        self._time_window = time_window or TimeWindow()
        self._retry = retry
        self.stop = stop or threading.Event()
        self._on_batch = on_batch
        self._revocations = _RevocationTracker()
        self._subscribed = False

    def subscribe(self) -> None:
        if not self._subscribed:
            self._consumer.subscribe([self._topic], listener=self._revocations)
            self._subscribed = True

    def run(self) -> None:
        """Process batches until `stop` is set. An unfinished batch is dropped uncommitted."""
        self.subscribe()
        log.info("consumer_started", extra={"kv": {"topic": self._topic, "batch_size": self._batch_size}})
        while not self.stop.is_set():
            report = self.run_once()
            if report is not None and self._on_batch is not None:
                self._on_batch(report)
        log.info("consumer_stopped", extra={"kv": {"topic": self._topic}})

    def run_once(self) -> BatchReport | None:
        """Fill, process and commit one batch. Returns None when nothing arrived or it was dropped."""
        self.subscribe()
        records = self._fill_batch()
        if not records or self.stop.is_set():
            return None
        started = time.monotonic()
        report = BatchReport(consumed=len(records))
        items, letters = self._validate(records)
        if not self._deliver_with_retries(items, records, letters, report):
            return None
        report.dead_lettered = len(letters)
        report.stored = len(items) - sum(1 for letter in letters if letter.rejection.kind == "sink_rejected")
        report.offsets = self._next_offsets(records)
        report.committed = self._commit(report.offsets, records)
        report.duration_s = time.monotonic() - started
        report.lag = self._lag()
        return report

    def assignment(self) -> set[TopicPartition]:
        """Partitions this consumer owns right now (empty while a rebalance is in progress)."""
        return set(self._consumer.assignment())

    def close(self) -> None:
        self._consumer.close(autocommit=False)

    def _fill_batch(self) -> list[ConsumerRecord]:
        pending: dict[TopicPartition, list[ConsumerRecord]] = {}
        count = 0
        deadline = time.monotonic() + self._max_wait_s
        while count < self._batch_size and not self.stop.is_set():
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            polled = self._consumer.poll(timeout_ms=remaining_ms, max_records=self._batch_size - count)
            if self._revocations.revoked:
                for partition in self._revocations.revoked:
                    count -= len(pending.pop(partition, []))
                self._revocations.revoked.clear()
            for partition, partition_records in polled.items():
                pending.setdefault(partition, []).extend(partition_records)
                count += len(partition_records)
            if count and not polled:
                break
        return [record for partition_records in pending.values() for record in partition_records]

    def _validate(self, records: Sequence[ConsumerRecord]) -> tuple[list[tuple[ConsumerRecord, NewsItem]], list[DeadLetter]]:
        items: list[tuple[ConsumerRecord, NewsItem]] = []
        letters: list[DeadLetter] = []
        for record in records:
            try:
                parsed = parse_news(record.value, self._max_message_bytes, self._time_window)
            except Exception as error:  # noqa: BLE001 - a validation bug must cost one message, not the worker
                log.error("validation_failed", extra={"kv": {"partition": record.partition, "offset": record.offset,
                                                            "error": _one_line(error)}})
                parsed = RejectedMessage("validation_error", f"validation failed unexpectedly: {_one_line(error)}")
            if isinstance(parsed, RejectedMessage):
                letters.append(_letter(record, parsed))
            else:
                items.append((record, parsed))
        return items, letters

    def _deliver_with_retries(
        self,
        items: list[tuple[ConsumerRecord, NewsItem]],
        records: Sequence[ConsumerRecord],
        letters: list[DeadLetter],
        report: BatchReport,
    ) -> bool:
        """True once the sink and the dead-letter topic both have the batch; False if stopped first.

        `letters` gains the messages the sink refused."""
        attempt = 0
        sink_letters: list[DeadLetter] | None = None
        unsent = list(letters)
        while not self.stop.is_set():
            attempt += 1
            try:
                if sink_letters is None:
                    sink_letters = self._deliver(items)
                    unsent += sink_letters
                self._dead_letters.publish_all(unsent)
                letters.extend(sink_letters)
                return True
            except (SinkUnavailable, DeadLetterUnavailable) as error:
                if isinstance(error, DeadLetterUnavailable):
                    unsent = error.unsent
                delay = self._retry.delay(attempt)
                report.retries += 1
                log.warning(
                    "batch_retry",
                    extra={"kv": {"attempt": attempt, "delay_s": round(delay, 2), "records": len(records), "error": _one_line(error)}},
                )
                self.stop.wait(delay)
        log.info("batch_dropped_on_stop", extra={"kv": {"records": len(records)}})
        return False

    def _deliver(self, items: list[tuple[ConsumerRecord, NewsItem]]) -> list[DeadLetter]:
        """Hand items to the sink; isolate messages it refuses by splitting. Returns those refused."""
        if not items:
            return []
        try:
            self._sink([item for _, item in items])
            return []
        except SinkUnavailable:
            raise
        except Exception as error:  # noqa: BLE001 - anything but infrastructure is narrowed to a message
            if len(items) == 1:
                record, item = items[0]
                rejection = RejectedMessage("sink_rejected", f"article {item.id} refused by the sink: {_one_line(error)}")
                return [_letter(record, rejection)]
            middle = len(items) // 2
            return self._deliver(items[:middle]) + self._deliver(items[middle:])

    def _next_offsets(self, records: Sequence[ConsumerRecord]) -> dict[TopicPartition, int]:
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
        return offsets

    def _commit(self, offsets: dict[TopicPartition, int], records: Sequence[ConsumerRecord]) -> bool:
        try:
            self._consumer.commit({tp: OffsetAndMetadata(offset, None, -1) for tp, offset in offsets.items()})
            return True
        except KafkaError as error:
            self._rewind(records)
            log.warning("commit_failed", extra={"kv": {"error": _one_line(error), "action": "batch will be processed again"}})
            return False

    def _rewind(self, records: Sequence[ConsumerRecord]) -> None:
        first: dict[TopicPartition, int] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            first[partition] = min(first.get(partition, record.offset), record.offset)
        assigned = self._consumer.assignment()
        for partition, offset in first.items():
            if partition in assigned:
                self._consumer.seek(partition, offset)

    def _lag(self) -> int | None:
        """Messages behind the log end, summed over every assigned partition.

        A partition's end is the larger of the fetch high-water mark (fresh, but known only for
        partitions fetched since assignment) and the broker's listed end offset (known for all;
        a little low on Tansu): a partition not fetched yet still counts its whole backlog."""
        assigned = sorted(self._consumer.assignment())
        if not assigned:
            return None
        try:
            listed = self._consumer.end_offsets(assigned, timeout_ms=_LAG_TIMEOUT_MS)
        except KafkaError:
            listed = {}
        total = 0
        known = False
        for partition in assigned:
            ends = [end for end in (self._consumer.highwater(partition), listed.get(partition)) if end is not None]
            if not ends:
                continue
            try:
                position = self._consumer.position(partition, timeout_ms=_LAG_TIMEOUT_MS)
            except KafkaError:
                continue
            if position is not None:
                total += max(0, max(ends) - position)
                known = True
        return total if known else None


def _letter(record: ConsumerRecord, rejection: RejectedMessage) -> DeadLetter:
    return DeadLetter(record.topic, record.partition, record.offset, record.key, record.value, rejection)


def _one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:500]
