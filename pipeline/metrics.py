"""The process's Prometheus metrics: one registry per `Metrics`, its /metrics endpoint, and the
worker and scheduler metric groups that the per-batch and per-pass hooks update.

A per-instance `CollectorRegistry` (never prometheus_client's global one) lets tests and the demo
build several workers and schedulers in one process; a worker and a scheduler sharing a process
share one `Metrics`, and so one endpoint. A group is registered on first use, so a worker's
endpoint shows only worker metrics and a scheduler's only scheduler metrics.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable, Mapping
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from typing import Literal, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from consumers.batch_consumer import BatchReport
from pipeline.errors import UserError

log = logging.getLogger(__name__)


class StoredFigures(Protocol):
    """What a pass stored: transitions by kind, new alerts by (rule, severity)."""

    @property
    def transitions(self) -> Mapping[str, int]: ...
    @property
    def fired(self) -> Mapping[tuple[str, str], int]: ...


class PassFigures(Protocol):
    """What a detection pass report says (pipeline.alerting.detection_pass.PassReport has it).

    Protocols for the alerting side's reports: metrics sits under the components and imports none
    of them (the batch report comes from consumers/, the layer below)."""

    @property
    def duration_ms(self) -> float: ...
    @property
    def judged_buckets(self) -> int: ...
    @property
    def stored(self) -> StoredFigures: ...
    @property
    def firing(self) -> int: ...


class DispatchFigures(Protocol):
    """What a delivery pass report says (pipeline.alerting.outbox.DispatchReport has it)."""

    @property
    def by_channel(self) -> Mapping[tuple[str, Literal["sent", "retried", "failed"]], int]: ...


NAMESPACE = "finsent"
BATCH_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
PASS_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TRANSITION_KINDS = ("fired", "escalated", "repeated", "resolved")


class WorkerMetrics:
    """Updated once per batch from the consumer's BatchReport and the sink's scoring figures."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, documentation: str) -> Counter:
            return Counter(name, documentation, namespace=NAMESPACE, registry=registry)

        self.consumed = counter("messages_consumed",
                                "Messages taken from the news topic (a batch processed again after a failed commit counts again)")
        self.stored = counter("articles_stored",
                              "Valid articles written to the database (idempotent: a replayed article counts, but is stored once)")
        self.scored = counter("articles_scored", "Articles the model scored (articles already scored by this model version are skipped)")
        self.dead_lettered = counter("messages_dead_lettered", "Messages sent to the dead-letter topic")
        self.retries = counter("batch_retries", "Batch attempts retried because the database or the dead-letter topic was unavailable")
        self.commits_failed = counter("commits_failed", "Offset commits that failed (rebalance); the batch is processed again")
        self.batch_seconds = Histogram(
            "batch_duration_seconds", "Wall time of one batch: validate, score, write, dead-letter, commit",
            namespace=NAMESPACE, registry=registry, buckets=BATCH_SECONDS_BUCKETS)
        self.scoring_seconds = Histogram(
            "scoring_duration_seconds", "Model time of one batch's new articles (batches with nothing to score are left out)",
            namespace=NAMESPACE, registry=registry, buckets=BATCH_SECONDS_BUCKETS)
        self.throughput = Gauge(
            "scoring_throughput_articles_per_second", "Articles scored per second of model time in the last batch that scored any",
            namespace=NAMESPACE, registry=registry)
        self.lag = Gauge(
            "consumer_lag_messages", "Messages behind the fetch high-water mark on this worker's partitions after its last batch "
            "(NaN until known)", namespace=NAMESPACE, registry=registry)
        self.lag.set(float("nan"))
        self._model = Gauge("model_info", "The loaded sentiment model (value 1)", ["model_version", "device"],
                            namespace=NAMESPACE, registry=registry)

    def model_loaded(self, model_version: str, device: str) -> None:
        self._model.labels(model_version=model_version, device=device).set(1)

    def record_batch(self, report: BatchReport, scored: int, scoring_s: float) -> None:
        self.consumed.inc(report.consumed)
        self.stored.inc(report.stored)
        self.scored.inc(scored)
        self.dead_lettered.inc(report.dead_lettered)
        self.retries.inc(report.retries)
        if not report.committed:
            self.commits_failed.inc()
        self.batch_seconds.observe(report.duration_s)
        if scored:
            self.scoring_seconds.observe(scoring_s)
            if scoring_s > 0:
                self.throughput.set(scored / scoring_s)
        if report.lag is not None:
            self.lag.set(report.lag)


class SchedulerMetrics:
    """Updated once per detection pass and delivery pass from their reports."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pass_seconds = Histogram(
            "detection_pass_duration_seconds", "Wall time of one detection pass (one transaction)",
            namespace=NAMESPACE, registry=registry, buckets=PASS_SECONDS_BUCKETS)
        self.passes_failed = Counter("detection_passes_failed", "Detection passes that failed on the database (retried at the next tick)",
                                     namespace=NAMESPACE, registry=registry)
        self.buckets_judged = Counter("buckets_judged", "Closed buckets judged by detection passes, every judged width counted",
                                      namespace=NAMESPACE, registry=registry)
        self.alerts_raised = Counter("alerts_raised", "New alerts (fired transitions) by rule and severity at firing",
                                     ["rule", "severity"], namespace=NAMESPACE, registry=registry)
        self.transitions = Counter("alert_transitions", "Alert lifecycle events stored, by kind", ["kind"],
                                   namespace=NAMESPACE, registry=registry)
        self.firing = Gauge("alerts_firing", "Alerts firing after the last detection pass", namespace=NAMESPACE, registry=registry)
        self.sent = Counter("deliveries_sent", "Notifications delivered, by channel", ["channel"], namespace=NAMESPACE, registry=registry)
        self.retried = Counter("deliveries_retried", "Delivery attempts that failed and will be retried, by channel", ["channel"],
                               namespace=NAMESPACE, registry=registry)
        self.failed = Counter("deliveries_failed", "Deliveries given up (permanent error or out of attempts), by channel",
                              ["channel"], namespace=NAMESPACE, registry=registry)
        self.delivery_passes_failed = Counter("delivery_passes_failed", "Delivery passes that failed on the database",
                                              namespace=NAMESPACE, registry=registry)
        self.leader = Gauge("scheduler_leader", "1 while this scheduler is the leader (detects and sends), 0 on standby",
                            namespace=NAMESPACE, registry=registry)
        for kind in TRANSITION_KINDS:
            self.transitions.labels(kind=kind)

    def known_channels(self, channels: Iterable[str]) -> None:
        """Start the per-channel series at 0, so rates and alerts on them work before the first failure."""
        for channel in channels:
            for counter in (self.sent, self.retried, self.failed):
                counter.labels(channel=channel)

    def record_pass(self, report: PassFigures) -> None:
        self.pass_seconds.observe(report.duration_ms / 1000)
        self.buckets_judged.inc(report.judged_buckets)
        for kind, count in report.stored.transitions.items():
            self.transitions.labels(kind=kind).inc(count)
        for (rule, severity), count in report.stored.fired.items():
            self.alerts_raised.labels(rule=rule, severity=severity).inc(count)
        self.firing.set(report.firing)

    def record_dispatch(self, report: DispatchFigures) -> None:
        counters = {"sent": self.sent, "retried": self.retried, "failed": self.failed}
        for (channel, outcome), count in report.by_channel.items():
            counters[outcome].labels(channel=channel).inc(count)


DEFAULT_HOST = "127.0.0.1"


class Metrics:
    """One process's registry, and its HTTP endpoint on `host` when `port` is given
    (FINSENT_METRICS_HOST, FINSENT_METRICS_PORT)."""

    def __init__(self, port: int | None = None, host: str = DEFAULT_HOST) -> None:
        self.port = port
        self.host = host
        self.registry = CollectorRegistry()
        build = Gauge("build_info", "The running finsent (value 1)", ["version"], namespace=NAMESPACE, registry=self.registry)
        build.labels(version=_finsent_version()).set(1)
        self._server: WSGIServer | None = None

    @cached_property
    def worker(self) -> WorkerMetrics:
        return WorkerMetrics(self.registry)

    @cached_property
    def scheduler(self) -> SchedulerMetrics:
        return SchedulerMetrics(self.registry)

    def serve(self) -> None:
        """Answer GET /metrics at host:port from a daemon thread that ends with the process (nothing
        without a port). The host is loopback unless FINSENT_METRICS_HOST opens it wider: the
        endpoint has no authentication. UserError when the address cannot be had, so the CLI prints
        one line instead of a traceback."""
        port = self.port
        if port is None or self._server is not None:
            return
        try:
            self._server, _thread = start_http_server(port, addr=self.host, registry=self.registry)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserError(
                    f"FINSENT_METRICS_PORT={port}: the port is already in use on {self.host} (another finsent process "
                    "on this host?); choose a free port or leave the variable empty"
                ) from None
            raise UserError(
                f"FINSENT_METRICS_HOST={self.host} FINSENT_METRICS_PORT={port}: cannot open the metrics endpoint: "
                f"{error.strerror or error}; use an address of this host (127.0.0.1, 0.0.0.0) and a free port"
            ) from None
        log.info("metrics_endpoint", extra={"kv": {"host": self.host, "port": port, "path": "/metrics"}})

    def close(self) -> None:
        """Stop answering and free the port (a process that ends needs not: the thread is a daemon)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _finsent_version() -> str:
    try:
        return version("finsent")
    except PackageNotFoundError:
        return "unknown"
