"""Kafka clients configured the way finsent needs them (manual commits, acks=all, clear connect errors)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """No Kafka broker answered at the configured bootstrap servers."""


@dataclass(frozen=True)
class KafkaOptions:
    bootstrap_servers: str
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    client_id: str = "finsent"
    bootstrap_timeout_ms: int = 30_000

    @property
    def servers(self) -> list[str]:
        return self.bootstrap_servers.split(",")


def _unavailable(options: KafkaOptions) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"no Kafka broker reachable at {options.bootstrap_servers}: start one or set FINSENT_KAFKA_BOOTSTRAP"
    )


def create_producer(options: KafkaOptions, **overrides: object) -> KafkaProducer:
    config: dict[str, object] = {
        "bootstrap_servers": options.servers,
        "client_id": options.client_id,
        "bootstrap_timeout_ms": options.bootstrap_timeout_ms,
        "acks": "all",
        "linger_ms": 5,
        "retries": 5,
    }
    config.update(overrides)
    try:
        return KafkaProducer(**config)
    except KafkaTimeoutError:
        raise _unavailable(options) from None


def create_consumer(options: KafkaOptions, group_id: str | None, **overrides: object) -> KafkaConsumer:
    config: dict[str, object] = {
        "bootstrap_servers": options.servers,
        "client_id": options.client_id,
        "bootstrap_timeout_ms": options.bootstrap_timeout_ms,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": options.session_timeout_ms,
        "heartbeat_interval_ms": options.heartbeat_interval_ms,
    }
    config.update(overrides)
    try:
        return KafkaConsumer(**config)
    except KafkaTimeoutError:
        raise _unavailable(options) from None


def create_admin(options: KafkaOptions) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            bootstrap_servers=options.servers,
            client_id=options.client_id,
            bootstrap_timeout_ms=options.bootstrap_timeout_ms,
        )
    except KafkaTimeoutError:
        raise _unavailable(options) from None


def ensure_topics(options: KafkaOptions, topics: list[str], partitions: int) -> list[str]:
    """Create the topics that do not exist yet, with their partition count up front.

    Returns the names created. Existing topics keep their partition count (finsent never
    changes it: some brokers, Tansu among them, cannot add partitions).
    """
    admin = create_admin(options)
    try:
        existing = set(admin.list_topics())
        missing = [topic for topic in topics if topic not in existing]
        created: list[str] = []
        for topic in missing:
            try:
                admin.create_topics([NewTopic(topic, partitions, 1)])
                created.append(topic)
            except TopicAlreadyExistsError:
                pass
        if created:
            _wait_for_metadata(admin, created)
            log.info("topics_created", extra={"kv": {"topics": ",".join(created), "partitions": partitions}})
        return created
    finally:
        admin.close()


def _wait_for_metadata(admin: KafkaAdminClient, topics: list[str], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if set(topics) <= set(admin.list_topics()):
            return
        time.sleep(0.05)
    raise KafkaError(f"topics {topics} not visible in metadata after {timeout_s}s")

