"""Talking to the real test broker from tests: produce raw values, read a topic back, wait for a state."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from consumers.kafka_clients import KafkaOptions, create_producer

T = TypeVar("T")


def produce(bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]],
            partition_of: Callable[[int], int | None] | None = None) -> int:
    """Send (key, value) pairs and wait for every ack. Returns how many were sent."""
    producer = create_producer(KafkaOptions(bootstrap, client_id="finsent-test-producer"), linger_ms=20)
    futures = []
    for index, (key, value) in enumerate(messages):
        partition = partition_of(index) if partition_of else None
        futures.append(producer.send(topic, key=key, value=value, partition=partition))
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    producer.close()
    return len(futures)


def read_topic(bootstrap: str, topic: str, expected: int | None = None, idle_s: float = 2.0,
               timeout_s: float = 60.0) -> list[ConsumerRecord]:
    """Every record of `topic` from the beginning: until `expected` arrived and nothing new for idle_s."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    while time.monotonic() < deadline:
        polled = consumer.poll(timeout_ms=200)
        for batch in polled.values():
            records.extend(batch)
        if polled:
            last_new = time.monotonic()
        enough = expected is None or len(records) >= expected
        if enough and time.monotonic() - last_new >= idle_s:
            break
    consumer.close()
    return records


def wait_until(check: Callable[[], T], timeout_s: float = 60.0, interval_s: float = 0.2, what: str = "condition") -> T:
    """Poll `check` until it returns a truthy value; fail the test with `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last value: {value!r})")
        time.sleep(interval_s)
