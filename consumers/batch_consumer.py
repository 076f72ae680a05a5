"""Poll -> validate -> sink stages -> commit, with at-least-once delivery and idempotent sinks in mind.

`run()` overlaps the stages (consumers/ordered_stages.py): while one batch is written, the next is
scored and the one after is fetched and validated; `run_once()` does one batch start to finish.
A sink may expose `stages` (functions that each take the previous one's result, the first one the
items, the last one the transaction; one before the last may come as `Lanes`, to work on several
batches at once); a plain callable is one stage.

Guarantees (the same in both modes):
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
- records of partitions revoked while a batch was being filled are dropped, not written;
- offsets are committed in batch order, by the consumer's own thread, each only after its batch's
  last stage returned. Batches in flight when partitions are revoked still finish: their commit
  covers only written records, so the partitions' new owner at worst processes them again (the
  sink is idempotent; rebalance callbacks run on kafka-python's IO thread, which must not block
  on a commit). A batch that could not be delivered (stop, or a bug in a stage) is never
  followed by a commit of a later batch: on stop nothing more is committed, after a bug the
  consumer waits for the batches in flight, commits none of them and rewinds to the failed one.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from consumers.dead_letter import DeadLetter, DeadLetterPublisher, DeadLetterUnavailable
from consumers.ordered_stages import Lanes, OrderedStages
from consumers.schema import NewsItem, RejectedMessage, TimeWindow, parse_news

log = logging.getLogger(__name__)

_LAG_TIMEOUT_MS = 1000


class SinkUnavailable(Exception):
    """Raised by a sink for infrastructure failures: the batch is retried, never dead-lettered."""


Sink = Callable[[Sequence[NewsItem]], None]
Stage = Callable[[Any], Any]
SinkStage = Stage | Lanes[Any]


class StagedSink(Protocol):
    """A sink whose work splits into steps that can overlap across batches.

    Calling it runs every stage on the items; `stages` are the same steps one by one: the first
    takes the items, each later one the previous one's result, the last one is the transaction.
    Any stage may raise SinkUnavailable; only the last one's is retried with its input, an
    earlier one's makes the batch go through the sink again from the start."""

    def __call__(self, items: Sequence[NewsItem]) -> None: ...

    @property
    def stages(self) -> Sequence[SinkStage]: ...


_BYTES_PER_TOKEN = 4
"""A message's size in bytes over this estimates its tokens, for the batch token budget."""
_LAG_EVERY_S = 1.0
"""In the overlapped loop the lag (broker round trips) is asked for at most this often while
batches are in flight, and afresh for the last one in flight (so a quiet worker reports its true lag)."""
_POLL_WHILE_BUSY_MS = 50
"""Longest poll while batches are in flight, so their commits wait no longer than this."""


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
    sink_stats: object = None
    """What the sink said about this batch (`sink_stats` of BatchConsumer), taken right after delivery."""


@dataclass
class _Batch:
    """One batch on its way through the stages."""

    records: list[ConsumerRecord]
    items: list[tuple[ConsumerRecord, NewsItem]]
    letters: list[DeadLetter]
    report: BatchReport
    started: float
    value: Any = None
    """The last stage's result, the next stage's input."""
    prepared: bool = True
    """False once a stage before the last failed: the last one sends the batch through the whole sink."""
    delivered: bool = False
    crashed: bool = False
    generation: int = 0
    """The consumer's rewind count when the batch was fetched; a later rewind makes it stale."""


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
        sink: Sink | StagedSink,
        dead_letters: DeadLetterPublisher,
        *,
        batch_size: int = 256,
        batch_tokens: int = 0,
        max_wait_ms: int = 500,
        max_message_bytes: int = 1_048_576,
        time_window: TimeWindow | None = None,
        retry: RetryPolicy = RetryPolicy(),
        stop: threading.Event | None = None,
        on_batch: Callable[[BatchReport], None] | None = None,
        sink_stats: Callable[[], object] | None = None,
        overlap: bool = True,
    ) -> None:
        """`batch_tokens` (0: no limit) caps a batch by its estimated tokens (bytes / 4) as well as
        by `batch_size` messages, so a batch of long articles costs about as much model time as one
        of headlines; `max_wait_ms` is the longest a batch fills in `run_once` (overlapped, a batch goes
        as soon as a lane of the model is free, so it bounds only the idle poll). `overlap=False` makes
        `run()` do one batch at a time, start to finish (the baseline bench/ingest.py measures)."""
        self._consumer = consumer
        self._topic = topic
        self._sink = sink
        stages: Sequence[SinkStage] | None = getattr(sink, "stages", None)
        self._stages = [stage if isinstance(stage, Lanes) else Lanes(stage) for stage in stages or [sink]]
        if self._stages[-1].count != 1:
            raise ValueError("the last stage is the transaction: it takes one batch at a time, in order")
        self._dead_letters = dead_letters
        self._batch_size = batch_size
        self._batch_bytes = batch_tokens * _BYTES_PER_TOKEN
        self._max_wait_s = max_wait_ms / 1000
        self._max_message_bytes = max_message_bytes
        self._time_window = time_window or TimeWindow()
        self._retry = retry
        self.stop = stop or threading.Event()
        self._on_batch = on_batch
        self._sink_stats = sink_stats
        self._overlap = overlap
        self._revocations = _RevocationTracker()
        self._subscribed = False
        self._generation = 0
        self._last_lag: int | None = None
        self._lag_at = float("-inf")

    def subscribe(self) -> None:
        if not self._subscribed:
            self._consumer.subscribe([self._topic], listener=self._revocations)
            self._subscribed = True

    def run(self) -> None:
        """Process batches until `stop` is set, stages overlapped. Unfinished batches are dropped uncommitted."""
        self.subscribe()
        log.info("consumer_started", extra={"kv": {"topic": self._topic, "batch_size": self._batch_size,
                                                   "stages": len(self._stages), "overlap": self._overlap}})
        if not self._overlap:
            while not self.stop.is_set():
                report = self.run_once()
                if report is not None and self._on_batch is not None:
                    self._on_batch(report)
            log.info("consumer_stopped", extra={"kv": {"topic": self._topic}})
            return
        pipeline: OrderedStages[_Batch] = OrderedStages(
            [*(replace(stage, run=self._prepare_step(stage.run)) for stage in self._stages[:-1]), self._deliver_step],
            stop=self.stop, name="batch")
        model_stage = -2 if len(self._stages) > 1 else -1  # the stage before the transaction, or the only one
        try:
            while not self.stop.is_set():
                self._commit_completed(pipeline)
                records = self._fill_batch(ready=lambda: pipeline.has_room() and pipeline.lane_free(model_stage),
                                           between_polls=lambda: self._commit_completed(pipeline),
                                           busy=lambda: pipeline.in_flight > 0)
                if not records or self.stop.is_set():
                    continue
                if not pipeline.submit(self._validated(records), while_waiting=lambda: self._commit_completed(pipeline)):
                    break
        finally:
            pipeline.close()
        log.info("consumer_stopped", extra={"kv": {"topic": self._topic}})

    def run_once(self) -> BatchReport | None:
        """Fill, process and commit one batch. Returns None when nothing arrived or it was dropped."""
        self.subscribe()
        records = self._fill_batch()
        if not records or self.stop.is_set():
            return None
        batch = self._validated(records)
        for stage in self._stages[:-1]:
            self._prepare_step(stage.run)(batch)
        self._deliver_step(batch)
        if not batch.delivered:
            return None
        self._commit_batch(batch)
        return batch.report

    def assignment(self) -> set[TopicPartition]:
        """Partitions this consumer owns right now (empty while a rebalance is in progress)."""
        return set(self._consumer.assignment())

    def close(self) -> None:
        self._consumer.close(autocommit=False)

    def _fill_batch(
        self,
        ready: Callable[[], bool] | None = None,
        between_polls: Callable[[], None] = lambda: None,
        busy: Callable[[], bool] = lambda: False,
    ) -> list[ConsumerRecord]:
        """Records for one batch: up to `batch_size` messages and `batch_tokens` estimated tokens.

        With `ready` (the pipelined loop: a lane of the model is free for this batch, and fewer
        batches are in flight than there are lanes in all) the batch is adaptive: it goes as soon
        as it holds a record and the model is free for it, and keeps growing while the model (or
        every stage) is busy, so batches are small when the stream is quiet (low latency) and grow
        under load until the model keeps up (its fixed costs per batch, and the transaction's,
        spread over more messages). Past the max wait it goes as soon as the model is free, and
        grows until then: a batch that waits in the consumer's thread can still grow, one queued
        between stages cannot.
        Without it, a batch goes when a poll comes back empty."""
        pending: dict[TopicPartition, list[ConsumerRecord]] = {}
        count = 0
        size = 0
        generation = self._generation
        deadline = time.monotonic() + self._max_wait_s
        while count < self._batch_size and not self.stop.is_set() and not (self._batch_bytes and size >= self._batch_bytes):
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 and (ready is None or not count or ready()):
                break  # past the max wait a batch keeps growing only while the model is busy: it would wait anyway
            if remaining_ms <= 0:  # past the max wait, waiting for the model: no busy loop
                timeout_ms = _POLL_WHILE_BUSY_MS
            elif busy() or (ready and count):
                timeout_ms = min(remaining_ms, _POLL_WHILE_BUSY_MS)
            else:
                timeout_ms = remaining_ms
            polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=self._batch_size - count)
            if self._revocations.revoked:
                for partition in self._revocations.revoked:
                    dropped = pending.pop(partition, [])
                    count -= len(dropped)
                    size -= sum(_size(record) for record in dropped)
                self._revocations.revoked.clear()
            for partition, partition_records in polled.items():
                pending.setdefault(partition, []).extend(partition_records)
                count += len(partition_records)
                size += sum(_size(record) for record in partition_records)
            between_polls()
            if self._generation != generation:  # rewound meanwhile: these records will be fetched again
                pending.clear()
                count = size = 0
                generation = self._generation
            if count and (ready() if ready is not None else not polled):
                break
        return [record for partition_records in pending.values() for record in partition_records]

    def _validated(self, records: list[ConsumerRecord]) -> _Batch:
        items, letters = self._validate(records)
        return _Batch(records, items, letters, BatchReport(consumed=len(records)), time.monotonic(),
                      value=[item for _, item in items], generation=self._generation)

    def _prepare_step(self, stage: Stage) -> Callable[[_Batch], None]:
        """A stage before the transaction: its failure sends the batch through the whole sink later,
        where the usual retry and isolation apply."""

        def run(batch: _Batch) -> None:
            if not batch.prepared or not batch.items:
                return
            try:
                batch.value = stage(batch.value)
            except Exception as error:  # noqa: BLE001 - retried or narrowed down by the last stage
                batch.prepared = False
                _log_stage_failure(len(batch.records), error)

        return run

    def _deliver_step(self, batch: _Batch) -> None:
        """The last stage: the transaction (retried while the sink is unavailable), then the dead letters."""
        first: Callable[[], None] | None = None
        if batch.prepared and not batch.crashed and batch.items:
            last, value = self._stages[-1].run, batch.value

            def first() -> None:
                last(value)
        batch.delivered = self._deliver_with_retries(batch.items, batch.records, batch.letters, batch.report, first)
        if not batch.delivered:
            return
        report = batch.report
        report.dead_lettered = len(batch.letters)
        report.stored = len(batch.items) - sum(1 for letter in batch.letters if letter.rejection.kind == "sink_rejected")
        if self._sink_stats is not None:
            report.sink_stats = self._sink_stats()

    def _commit_batch(self, batch: _Batch, lag_every_s: float = 0.0) -> None:
        """Commit the batch's offsets; the lag (broker round trips) at most every `lag_every_s`."""
        report = batch.report
        report.offsets = self._next_offsets(batch.records)
        report.committed = self._commit(report.offsets, batch.records)
        report.duration_s = time.monotonic() - batch.started
        now = time.monotonic()
        if now - self._lag_at >= lag_every_s:
            self._last_lag, self._lag_at = self._lag(), now
        report.lag = self._last_lag

    def _commit_completed(self, pipeline: OrderedStages[_Batch], wait_s: float = 0.0) -> None:
        """Commit, in order, the batches that left the last stage; stop at one that was not delivered."""
        for batch in pipeline.completed(wait_s):
            if batch.generation != self._generation:
                continue  # fetched before a rewind: processed again from the rewound position
            if not batch.delivered:
                if not self.stop.is_set():
                    self._recover_from(batch, pipeline)
                return
            # The lag is read at most once a second under load; but a reading from before the last
            # batch in flight was fetched still counts that batch's records, and would stay the
            # reported lag for as long as the stream is quiet: read it afresh then.
            stale = not pipeline.in_flight and self._lag_at < batch.started
            self._commit_batch(batch, lag_every_s=0.0 if stale else _LAG_EVERY_S)
            if self._on_batch is not None:
                self._on_batch(batch.report)

    def _recover_from(self, failed: _Batch, pipeline: OrderedStages[_Batch]) -> None:
        """A batch left the stages undelivered by a bug: commit nothing after it, rewind to it."""
        self._generation += 1
        later: list[_Batch] = []
        while pipeline.in_flight and not self.stop.is_set():
            later += pipeline.completed(wait_s=_POLL_WHILE_BUSY_MS / 1000)
        self._rewind([record for batch in [failed, *later] for record in batch.records])
        log.error("batch_not_delivered", extra={"kv": {"records": len(failed.records), "later_batches": len(later),
                                                       "action": "rewound; the batch will be processed again"}})

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
        prepared: Callable[[], None] | None = None,
    ) -> bool:
        """True once the sink and the dead-letter topic both have the batch; False if stopped first.

        `prepared` is the last stage on its ready input: tried first (and again while the sink is
        unavailable); if it fails otherwise, the items go through the whole sink. `letters` gains
        the messages the sink refused."""
        attempt = 0
        sink_letters: list[DeadLetter] | None = None
        unsent = list(letters)
        while not self.stop.is_set():
            attempt += 1
            try:
                if sink_letters is None and prepared is not None:
                    try:
                        prepared()
                        sink_letters = []
                    except SinkUnavailable:
                        raise
                    except Exception as error:  # noqa: BLE001 - narrowed down by the whole-sink path below
                        _log_stage_failure(len(records), error)
                        prepared = None
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


def _log_stage_failure(records: int, error: BaseException) -> None:
    log.info("batch_stage_failed", extra={"kv": {"records": records, "error": _one_line(error),
                                                 "action": "the batch goes through the sink again"}})


def _size(record: ConsumerRecord) -> int:
    return len(record.value) if record.value is not None else 0


def _letter(record: ConsumerRecord, rejection: RejectedMessage) -> DeadLetter:
    return DeadLetter(record.topic, record.partition, record.offset, record.key, record.value, rejection)


def _one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:500]
