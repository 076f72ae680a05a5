"""`finsent scheduler`: APScheduler runs a detection pass every FINSENT_ALERT_INTERVAL and sends
due notifications every few seconds, on the leader replica only.

Standbys try for leadership at every tick, so one takes over within an interval of the leader
dying. A database outage is logged and retried at the next tick; it never stops the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from pipeline.alerting.alertmanager_resend import AlertmanagerResender
from pipeline.alerting.channels.alertmanager import AlertmanagerChannel
from pipeline.alerting.channels.channel import Channel
from pipeline.alerting.channels.kafka_topic import KafkaChannel
from pipeline.alerting.channels.log_line import LogChannel
from pipeline.alerting.channels.mail import EmailChannel
from pipeline.alerting.channels.slack import SlackChannel
from pipeline.alerting.channels.webhook import WebhookChannel
from pipeline.alerting.delivery_retry import DeliveryRetryPolicy
from pipeline.alerting.detection_pass import DetectionPass, DetectionSchedule
from pipeline.alerting.leadership import Leadership
from pipeline.alerting.lifecycle import LifecyclePolicy
from pipeline.alerting.outbox import OutboxDispatcher
from pipeline.alerting.routing import AlertRoute, channels_for, parse_routes
from pipeline.alerting.rules import DetectionRules
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.kafka_settings import kafka_options

if TYPE_CHECKING:
    from pipeline.metrics import Metrics, SchedulerMetrics

log = logging.getLogger(__name__)

DELIVERY_POLL_SECONDS = 2.0
DELIVERY_BATCH = 20


@dataclass(frozen=True)
class SchedulerParts:
    detection: DetectionPass
    dispatcher: OutboxDispatcher
    leadership: Leadership
    channels: Mapping[str, Channel]
    resender: AlertmanagerResender | None = None
    """Re-posts firing alerts to Alertmanager between their events; None without that channel."""

    def close(self) -> None:
        """Give up leadership and flush/close the channels (the Kafka producer)."""
        self.leadership.release()
        for channel in self.channels.values():
            channel.close()


def build_parts(settings: Settings, engine: Engine) -> SchedulerParts:
    routes = alert_routes(settings)
    channels = channels_from_settings(settings)

    def route(entity: str, severity: str) -> list[str]:
        return channels_for(entity, severity, channels, routes)

    detection = DetectionPass(
        engine,
        detection_rules(settings),
        lifecycle_policy(settings),
        DetectionSchedule(
            widths=settings.judged_widths,
            lateness=timedelta(seconds=settings.alert_lateness),
            idle_close=timedelta(seconds=settings.alert_idle_close),
            market_entity=settings.market_entity,
        ),
        route,
    )
    # A small batch per tick: a receiver that times out cannot hold detection passes back for long.
    dispatcher = OutboxDispatcher(engine, channels, retry_policy(settings), batch_limit=DELIVERY_BATCH)
    alertmanager = channels.get("alertmanager")
    resender = AlertmanagerResender(engine, alertmanager) if isinstance(alertmanager, AlertmanagerChannel) else None
    return SchedulerParts(detection, dispatcher, Leadership(engine), channels, resender)


def channels_from_settings(settings: Settings) -> dict[str, Channel]:
    """log always; webhook, slack and alertmanager when their URL is set; email with an SMTP host; kafka when enabled."""
    timeout_s = float(settings.delivery_timeout)
    channels: dict[str, Channel] = {"log": LogChannel()}
    if settings.alert_webhook_url:
        channels["webhook"] = WebhookChannel(settings.alert_webhook_url, settings.alert_webhook_secret.reveal(), timeout_s)
    if settings.alert_slack_webhook_url:
        channels["slack"] = SlackChannel(settings.alert_slack_webhook_url.reveal(), timeout_s)
    if settings.alert_smtp_host:
        channels["email"] = EmailChannel(
            host=settings.alert_smtp_host,
            port=settings.alert_smtp_port,
            sender=settings.alert_email_from,
            recipients=settings.alert_email_to,
            starttls=settings.alert_smtp_starttls,
            user=settings.alert_smtp_user,
            password=settings.alert_smtp_password.reveal(),
            timeout_s=timeout_s,
        )
    if settings.alert_kafka:
        channels["kafka"] = KafkaChannel(
            kafka_options(settings, client_id="finsent-alerts"), settings.topic_alerts, timeout_s
        )
    if settings.alertmanager_url:
        channels["alertmanager"] = AlertmanagerChannel(
            settings.alertmanager_url.reveal(), float(settings.alertmanager_resend), timeout_s
        )
    return channels


def retry_policy(settings: Settings) -> DeliveryRetryPolicy:
    """Settings already checked that the backoff is at most its maximum."""
    return DeliveryRetryPolicy(settings.delivery_max_attempts, float(settings.delivery_backoff),
                               float(settings.delivery_backoff_max))


def alert_routes(settings: Settings) -> tuple[AlertRoute, ...]:
    """FINSENT_ALERT_ROUTES, parsed where alerts are delivered (a bad route must not stop `finsent scores`)."""
    try:
        return parse_routes(settings.alert_routes)
    except ValueError as error:
        raise ConfigError(f"FINSENT_ALERT_ROUTES={settings.alert_routes!r} is invalid: {error}") from None


def detection_rules(settings: Settings) -> DetectionRules:
    return DetectionRules(
        horizons=settings.alert_horizons,
        trailing_seconds=settings.alert_trailing,
        prior_weight_seconds=settings.alert_prior_weight,
        false_alarms_per_year=settings.alert_false_alarms_per_year,
        min_stories=settings.alert_min_stories,
    )


def lifecycle_policy(settings: Settings) -> LifecyclePolicy:
    return LifecyclePolicy(settings.alert_resolve_buckets, timedelta(seconds=settings.alert_repeat_interval))


class AlertScheduler:
    def __init__(self, parts: SchedulerParts, interval_seconds: float, metrics: Metrics | None = None) -> None:
        self._parts = parts
        self._interval = interval_seconds
        self._metrics: SchedulerMetrics | None = metrics.scheduler if metrics is not None else None
        if self._metrics is not None:
            self._metrics.known_channels(parts.channels)
        # One worker thread: passes and deliveries never overlap and share the leader connection safely.
        self._scheduler = BlockingScheduler(timezone=timezone.utc, executors={"default": ThreadPoolExecutor(1)})
        self._was_leader: bool | None = None

    def detect_once(self, close_all: bool = False) -> None:
        if not self._leading():
            return
        try:
            report = self._parts.detection.run(close_all=close_all)
        except DBAPIError as error:
            if self._metrics is not None:
                self._metrics.passes_failed.inc()
            log.warning("detection_pass_failed", extra={"kv": {"error": _one_line(error), "retry_in_s": self._interval}})
            return
        if self._metrics is not None:
            self._metrics.record_pass(report)
        log.info("detection_pass", extra={"kv": report.log_fields()})

    def deliver_once(self) -> None:
        if not self._leading():
            return
        started = time.perf_counter()
        try:
            report = self._parts.dispatcher.dispatch_due()
        except DBAPIError as error:
            if self._metrics is not None:
                self._metrics.delivery_passes_failed.inc()
            log.warning("delivery_pass_failed", extra={"kv": {"error": _one_line(error)}})
            return
        if self._metrics is not None:
            self._metrics.record_dispatch(report)
        if report.sent or report.retried or report.failed:
            log.info("delivery_pass", extra={"kv": {
                "sent": report.sent, "retried": report.retried, "failed": report.failed,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }})
        self._resend_to_alertmanager()

    def _resend_to_alertmanager(self) -> None:
        """After the outbox pass, on the same thread: a resend never overtakes the post of a resolution."""
        if self._parts.resender is None:
            return
        try:
            resends = self._parts.resender.resend_due()
        except DBAPIError as error:
            log.warning("alertmanager_resend_pass_failed", extra={"kv": {"error": _one_line(error)}})
            return
        if resends.resent or resends.failed:
            log.info("alertmanager_resend", extra={"kv": {"resent": resends.resent, "failed": resends.failed}})

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set: passes every interval (the first at once), deliveries every few seconds."""
        now = datetime.now(timezone.utc)
        self._scheduler.add_job(self.detect_once, IntervalTrigger(seconds=self._interval), next_run_time=now,
                                id="detect", max_instances=1, coalesce=True, misfire_grace_time=None)
        self._scheduler.add_job(self.deliver_once, IntervalTrigger(seconds=DELIVERY_POLL_SECONDS), next_run_time=now,
                                id="deliver", max_instances=1, coalesce=True, misfire_grace_time=None)
        watcher = threading.Thread(target=self._stop_when_set, args=(stop,), name="scheduler-stop", daemon=True)
        watcher.start()
        log.info("scheduler_started", extra={"kv": {"interval_s": self._interval, "delivery_poll_s": DELIVERY_POLL_SECONDS}})
        try:
            self._scheduler.start()
        finally:
            self._parts.close()
            log.info("scheduler_stopped", extra={"kv": {}})

    def _stop_when_set(self, stop: threading.Event) -> None:
        stop.wait()
        self._scheduler.shutdown(wait=True)

    def _leading(self) -> bool:
        leader = self._parts.leadership.ensure()
        if self._metrics is not None:
            self._metrics.leader.set(1 if leader else 0)
        if leader != self._was_leader:
            log.info("scheduler_role", extra={"kv": {"role": "leader" if leader else "standby"}})
            self._was_leader = leader
        return leader


def _one_line(error: BaseException) -> str:
    return " ".join(str(getattr(error, "orig", error)).split())[:300]
