"""Kafka channel: the notice payload as JSON on the alerts topic, keyed by entity.

Key = entity (UTF-8), so one entity's alerts stay in order on one partition. Headers:
`finsent-idempotency-key` (consumers drop repeats by it) and `finsent-event`. A send waits for the
broker's acknowledgement (acks=all) for at most the delivery timeout; any broker error is retried.
The producer is created on first use, so a broker that is down at start delays alerts, not the scheduler.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from kafka import KafkaProducer
from kafka.errors import KafkaError

from consumers.kafka_clients import BrokerUnavailable, KafkaOptions, create_producer
from pipeline.alerting.channels.channel import DeliveryFailed
from pipeline.alerting.notice import AlertNotice

IDEMPOTENCY_HEADER = "finsent-idempotency-key"
EVENT_HEADER = "finsent-event"
_ACK_GRACE_S = 1.0
"""Extra wait for the ack, so the producer's own delivery timeout reports first."""


class KafkaChannel:
    def __init__(self, options: KafkaOptions, topic: str, timeout_s: float = 10.0) -> None:
        self._options = replace(options, bootstrap_timeout_ms=int(timeout_s * 1000))
        self._topic = topic
        self._timeout_s = timeout_s
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "kafka"

    def _producer_or_create(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                timeout_ms = int(self._timeout_s * 1000)
                # The producer gives up on a record within the delivery timeout itself, so a record
                # reported as failed is not still queued to be sent behind the retry's back.
                self._producer = create_producer(
                    self._options, max_block_ms=timeout_ms, request_timeout_ms=timeout_ms,
                    delivery_timeout_ms=timeout_ms, linger_ms=0,
                )
            return self._producer

    def send(self, notice: AlertNotice) -> None:
        try:
            producer = self._producer_or_create()
            future = producer.send(
                self._topic,
                key=notice.entity.encode("utf-8"),
                value=notice.to_json().encode("utf-8"),
                headers=[
                    (IDEMPOTENCY_HEADER, notice.idempotency_key.encode("utf-8")),
                    (EVENT_HEADER, notice.event.encode("utf-8")),
                ],
            )
            future.get(timeout=self._timeout_s + _ACK_GRACE_S)
        except BrokerUnavailable as error:
            raise DeliveryFailed(str(error), permanent=False) from None
        except KafkaError as error:
            raise DeliveryFailed(
                f"cannot publish to topic {self._topic} at {self._options.bootstrap_servers}: {error!r}",
                permanent=False,
            ) from None

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=self._timeout_s)
                self._producer = None
