"""Prometheus metrics and per-batch/per-pass log lines of `finsent worker` and `finsent scheduler`,
scraped over HTTP from real processes on the real broker and PostgreSQL."""

from __future__ import annotations

import re
import signal
import socket
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.metrics import Metrics
from pipeline.series import bucket_start
from storage.models import Alert, AlertEvent
from tests.conftest import TEST_PARTITIONS, Topics
from tests.integration.test_cli_errors import assert_one_clear_line, run_finsent
from tests.integration.test_ingestion import count_articles
from tests.support.alert_history import WIDTH, write_history
from tests.support.broker_io import produce, wait_until
from tests.support.http_receiver import HttpEndpoint, always
from tests.support.news_factory import valid_messages
from tests.support.worker_process import WorkerProcess

VALID = 40

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> Samples:
    """Every sample of the endpoint, keyed by (sample name, labels), parsed by prometheus_client."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode("utf-8")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape_when(port: int, ready: dict[str, float], timeout_s: float = 60) -> Samples:
    """Scrape until every named unlabelled sample has reached its value (metrics follow the commit)."""
    def check() -> Samples | None:
        try:
            samples = scrape(port)
        except OSError:
            return None
        return samples if all(value(samples, name) == expected for name, expected in ready.items()) else None

    return wait_until(check, timeout_s=timeout_s, what=f"metrics {ready} on port {port}")


def log_lines(text: str, event: str) -> list[dict[str, str]]:
    """The key=value fields of every `event=...` line."""
    return [dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line)) for line in text.splitlines() if f"event={event} " in line]


@pytest.mark.parametrize("text", ["0", "65536", "http", "-1", "9108x"])
def test_metrics_port_must_be_a_tcp_port(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.load({"FINSENT_METRICS_PORT": text})
    assert f"FINSENT_METRICS_PORT={text!r}" in str(raised.value) and "between 1 and 65535" in str(raised.value)


def test_metrics_port_is_off_by_default_and_read_when_set() -> None:
    assert Settings.load({}).metrics_port is None
    assert Settings.load({"FINSENT_METRICS_PORT": " 9108 "}).metrics_port == 9108


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_the_endpoint_listens_on_loopback_only_by_default() -> None:
    """127.0.0.2 is this host too, but not the address bound: only a wildcard bind would answer it."""
    settings = Settings.load({"FINSENT_METRICS_PORT": str(free_port())})
    assert settings.metrics_host == "127.0.0.1"
    metrics = Metrics(settings.metrics_port, settings.metrics_host)
    metrics.serve()
    try:
        assert settings.metrics_port is not None
        assert any(name == "finsent_build_info" for name, _ in scrape(settings.metrics_port))
        assert not accepts_connections("127.0.0.2", settings.metrics_port), "the endpoint answers beyond 127.0.0.1"
    finally:
        metrics.close()


def test_metrics_host_opens_the_endpoint_to_every_interface() -> None:
    settings = Settings.load({"FINSENT_METRICS_PORT": str(free_port()), "FINSENT_METRICS_HOST": "0.0.0.0"})
    metrics = Metrics(settings.metrics_port, settings.metrics_host)
    metrics.serve()
    try:
        assert settings.metrics_port is not None and accepts_connections("127.0.0.2", settings.metrics_port)
    finally:
        metrics.close()


@pytest.mark.parametrize("text", ["", "http://0.0.0.0", "127.0.0.1:9108", "two words"])
def test_metrics_host_must_be_an_address(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.load({"FINSENT_METRICS_HOST": text})
    assert f"FINSENT_METRICS_HOST={text!r}" in str(raised.value) and "127.0.0.1" in str(raised.value)


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_a_taken_metrics_port_is_one_clear_error(command: str) -> None:
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_finsent(command, environment={"FINSENT_METRICS_PORT": str(port)})
    assert_one_clear_line(result, f"FINSENT_METRICS_PORT={port}", "already in use")


@pytest.mark.integration
def test_worker_process_exposes_counts_that_match_what_was_produced(
    engine: Engine, topics: Topics, kafka_bootstrap: str, worker_environment: dict[str, str], tmp_path: Path
) -> None:
    metrics_port = free_port()
    produce(kafka_bootstrap, topics.news, valid_messages(VALID), partition_of=lambda i: i % TEST_PARTITIONS)
    worker = WorkerProcess({**worker_environment, "FINSENT_METRICS_PORT": str(metrics_port)}, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: count_articles(engine) == VALID, timeout_s=180,
                   what=f"{VALID} articles; worker log:\n{worker.log_text()[-3000:]}")
        # Alone in its batch once the valid ones are done: a batch that never reaches the sink
        # must not count the previous batch's scores again.
        produce(kafka_bootstrap, topics.news, [(None, b"{not json")])
        samples = scrape_when(metrics_port, {"finsent_messages_dead_lettered_total": 1})
        worker.send(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        worker.kill()

    assert value(samples, "finsent_messages_consumed_total") == VALID + 1
    assert value(samples, "finsent_articles_stored_total") == VALID
    assert value(samples, "finsent_articles_scored_total") == VALID
    assert value(samples, "finsent_batch_retries_total") == 0
    assert value(samples, "finsent_consumer_lag_messages") == 0, "every produced message was consumed"
    batches = value(samples, "finsent_batch_duration_seconds_count")
    assert batches is not None and batches >= 2
    assert (value(samples, "finsent_scoring_duration_seconds_count") or 0) >= 1
    assert (value(samples, "finsent_scoring_throughput_articles_per_second") or 0) > 0
    assert any(name == "finsent_model_info" and dict(labels).get("model_version") for name, labels in samples)
    assert any(name == "finsent_build_info" for name, _ in samples)
    assert not any(name.startswith("finsent_alerts_raised") for name, _ in samples), "scheduler metrics on a worker"

    lines = log_lines(worker.log_text(), "batch")
    assert len(lines) == batches, "one log line per batch"
    assert sum(int(line["consumed"]) for line in lines) == VALID + 1
    assert sum(int(line["scored"]) for line in lines) == VALID
    assert sum(int(line["dead_lettered"]) for line in lines) == 1
    for line in lines:
        assert {"stored", "retries", "committed", "duration_ms", "scoring_ms", "writing_ms", "scored_per_s", "buckets"} <= set(line)
        assert line["lag"].isdigit(), line


@pytest.mark.integration
def test_scheduler_process_counts_alerts_raised_and_failed_deliveries(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    start = bucket_start(datetime.now(timezone.utc), WIDTH) - timedelta(seconds=WIDTH * 120)
    write_history(engine, ["PFE", "AAPL"], 120, burst_entity="PFE", burst_at=100, start=start)
    refusing = HttpEndpoint(answer=always(400))  # a permanent failure: given up at once
    environment = {
        "FINSENT_DATABASE_URL": database_url,
        "FINSENT_ALERT_INTERVAL": "1s",
        "FINSENT_ALERT_KAFKA": "false",
        "FINSENT_ALERT_WEBHOOK_URL": refusing.url,
        "FINSENT_METRICS_PORT": str(metrics_port),
    }
    scheduler = WorkerProcess(environment, tmp_path / "scheduler.log", command="scheduler").start()
    try:
        def settled() -> Samples | None:
            try:
                samples = scrape(metrics_port)
            except OSError:
                return None
            done = value(samples, "finsent_deliveries_failed_total", channel="webhook") == 1
            return samples if done and value(samples, "finsent_deliveries_sent_total", channel="log") == 1 else None

        samples = wait_until(settled, timeout_s=90, what=f"the fired alert's deliveries; log:\n{scheduler.log_text()[-3000:]}")
        scheduler.send(signal.SIGTERM)
        assert scheduler.wait(30) == 0
    finally:
        scheduler.kill()
        refusing.close()

    with Session(engine) as session:
        alert = session.execute(select(Alert.rule, Alert.id)).one()
        fired_severity = session.scalar(select(AlertEvent.severity).where(AlertEvent.alert_id == alert.id, AlertEvent.kind == "fired"))
    assert fired_severity is not None
    assert value(samples, "finsent_alerts_raised_total", rule=alert.rule, severity=fired_severity) == 1
    raised = [v for (name, _), v in samples.items() if name == "finsent_alerts_raised_total"]
    assert sum(raised) == 1, "one alert raised in all"
    assert value(samples, "finsent_alert_transitions_total", kind="fired") == 1
    assert (value(samples, "finsent_alert_transitions_total", kind="resolved") or 0) == 0, "still in its horizons"
    assert value(samples, "finsent_alert_transitions_total", kind="escalated") == 0
    assert value(samples, "finsent_deliveries_sent_total", channel="webhook") == 0
    assert value(samples, "finsent_deliveries_failed_total", channel="log") == 0
    assert value(samples, "finsent_scheduler_leader") == 1
    assert (value(samples, "finsent_detection_pass_duration_seconds_count") or 0) >= 1
    assert not any(name.startswith("finsent_messages_consumed") for name, _ in samples), "worker metrics on a scheduler"

    log = scheduler.log_text()
    passes = log_lines(log, "detection_pass")
    assert sum(int(line["fired"]) for line in passes) == 1
    assert all({"judged_buckets", "candidates", "firing", "duration_ms", "watermark"} <= set(line) for line in passes)
    deliveries = log_lines(log, "delivery_pass")
    assert sum(int(line["failed"]) for line in deliveries) == 1 and sum(int(line["sent"]) for line in deliveries) == 1
    assert all("duration_ms" in line for line in deliveries)
