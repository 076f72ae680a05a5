"""Kafka client options from the settings object."""

from __future__ import annotations

from consumers.kafka_clients import KafkaOptions
from pipeline.config import Settings


def kafka_options(settings: Settings, client_id: str = "finsent-worker") -> KafkaOptions:
    return KafkaOptions(
        bootstrap_servers=settings.kafka_bootstrap,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        client_id=client_id,
        bootstrap_timeout_ms=settings.kafka_connect_timeout_ms,
    )
