"""Alert notifications through the outbox, against real receivers: an HTTP server, an SMTP server,
the Kafka-protocol broker and PostgreSQL. Backoff is driven by an injected clock, never by sleeping."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from consumers.embedded_broker import free_loopback_port
from consumers.kafka_clients import KafkaOptions, ensure_topics
from pipeline.alerting.channels.channel import Channel, DeliveryFailed
from pipeline.alerting.channels.http_post import is_retryable_status, post
from pipeline.alerting.channels.kafka_topic import KafkaChannel
from pipeline.alerting.channels.log_line import LogChannel
from pipeline.alerting.channels.mail import EmailChannel
from pipeline.alerting.channels.slack import SlackChannel
from pipeline.alerting.channels.webhook import WebhookChannel
from pipeline.alerting.delivery_retry import DeliveryRetryPolicy
from pipeline.alerting.notice import AlertNotice, event_label, parse_event_label
from pipeline.alerting.outbox import DispatchReport, OutboxDispatcher, enqueue_deliveries
from pipeline.alerting.routing import channels_for
from pipeline.alerting.scheduler import alert_routes, channels_from_settings, retry_policy
from pipeline.config import Settings
from pipeline.logfmt import KeyValueFormatter
from storage.models import Alert, AlertEvent, Delivery
from tests.support.broker_io import read_topic
from tests.support.http_receiver import Answer, HttpEndpoint, Received, always, fail_first

BUCKET = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
T0 = datetime(2026, 3, 2, 14, 7, tzinfo=timezone.utc)
SECRET = "s3cret-key"
EVIDENCE: dict[str, Any] = {
    "metric": "adverse_stories", "value": 12.0, "baseline": 0.4, "observed": 12.0, "expected": 0.4, "horizon": "6h",
    "horizon_seconds": 21600, "tail_probability": 2e-06, "false_alarms_per_year": 0.0214, "threshold": 9.34e-05,
    "article_count": 14, "mean_p_negative": 0.81, "baseline_p_negative": 0.12, "baseline_source": "own",
    "bucket_start": "2026-03-02T14:00:00+00:00", "bucket_end": "2026-03-02T14:05:00+00:00",
    "window_start": "2026-03-02T08:05:00+00:00",
    "top_negative": [
        {"id": "art-1", "headline": "Pfizer recalls <batch> & halts plant", "p_negative": 0.97,
         "published_at": "2026-03-02T14:01:00+00:00"},
        {"id": "art-2", "headline": "Regulator opens probe into Pfizer", "p_negative": 0.91,
         "published_at": "2026-03-02T14:03:00+00:00"},
    ],
}
# Full jitter keeps every delay at or under backoff_max, so advancing this far makes any retry due.
POLICY = DeliveryRetryPolicy(max_attempts=5, backoff_s=5.0, backoff_max_s=60.0)
PAST_ANY_BACKOFF = timedelta(seconds=POLICY.backoff_max_s)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def http_endpoint() -> Iterator[Callable[..., HttpEndpoint]]:
    started: list[HttpEndpoint] = []

    def start(answer: Answer | None = None, delay_s: float = 0.0) -> HttpEndpoint:
        endpoint = HttpEndpoint(answer or always(200), delay_s)
        started.append(endpoint)
        return endpoint

    yield start
    for endpoint in started:
        endpoint.close()


class RecordingSmtpHandler:
    """aiosmtpd handler: keeps every accepted message; refuses recipients in `refuse`."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = refuse
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=default_policy)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[RecordingSmtpHandler, int]]]:
    controllers: list[Controller] = []

    def start(refuse: frozenset[str] = frozenset()) -> tuple[RecordingSmtpHandler, int]:
        handler = RecordingSmtpHandler(refuse)
        port = free_loopback_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return handler, port

    yield start
    for controller in controllers:
        controller.stop()


# --- rows -----------------------------------------------------------------------------------


def alert_rows(
    alert_id: int | None = 7, entity: str = "PFE", kind: str = "fired", severity: str = "major"
) -> tuple[Alert, AlertEvent]:
    """An alert and its event as the lifecycle code writes them; ids None let the database assign them."""
    alert = Alert(
        id=alert_id, dedup_key=f"{entity}/negative_spike/300@{BUCKET.isoformat()}",
        fingerprint=f"{entity}/negative_spike/300", entity=entity, rule="negative_spike", width_seconds=300,
        bucket_start=BUCKET, value=0.62, baseline=0.18, severity=severity, state="firing", evidence=EVIDENCE,
        fired_at=T0, last_bucket_start=BUCKET, quiet_buckets=0, silenced=False,
    )
    event = AlertEvent(alert_id=alert_id, kind=kind, bucket_start=BUCKET, severity=severity, value=0.62)
    return alert, event


def store_alert(engine: Engine, entity: str = "PFE", severity: str = "major", kind: str = "fired") -> tuple[int, str]:
    """Write an alert and its event as the lifecycle code would; returns (alert id, event label)."""
    with Session(engine) as session, session.begin():
        alert, event = alert_rows(alert_id=None, entity=entity, kind=kind, severity=severity)
        session.add(alert)
        session.flush()
        event.alert_id = alert.id
        session.add(event)
        return alert.id, event_label(kind, BUCKET)


def queue(engine: Engine, alert_id: int, label: str, channels: list[str], due_at: datetime | None = T0) -> int:
    with Session(engine) as session, session.begin():
        return enqueue_deliveries(session, alert_id, label, channels, due_at=due_at)


def deliveries(engine: Engine) -> list[Delivery]:
    with Session(engine) as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def dispatcher(engine: Engine, channels: list[Channel], clock: FakeClock, policy: DeliveryRetryPolicy = POLICY) -> OutboxDispatcher:
    return OutboxDispatcher(engine, {channel.name: channel for channel in channels}, policy, clock=clock, rng=random.Random(7))


def verify_signature(received: Received, secret: str) -> bool:
    """What a receiver does, written from the documented rule, not from the sender's code."""
    timestamp = received.headers["x-finsent-timestamp"].encode("ascii")
    expected = hmac.new(secret.encode(), timestamp + b"." + received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest("sha256=" + expected, received.headers["x-finsent-signature"])


# --- pure units -----------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    policy = DeliveryRetryPolicy(max_attempts=4, backoff_s=5.0, backoff_max_s=60.0)
    assert [policy.ceiling_s(n) for n in (1, 2, 3, 4, 5, 500)] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    rng = random.Random(1)
    for attempts in (1, 3, 5):
        delays = [policy.delay_s(attempts, rng) for _ in range(2000)]
        ceiling = policy.ceiling_s(attempts)
        assert all(0.0 <= delay <= ceiling for delay in delays)
        assert min(delays) < 0.05 * ceiling and max(delays) > 0.95 * ceiling, "full jitter spans [0, ceiling]"
    assert policy.delay_s(1, rng, retry_after_s=30.0) >= 30.0, "Retry-After is a floor"
    assert policy.delay_s(1, rng, retry_after_s=86400.0) == 60.0, "but never past backoff_max"
    assert [policy.gives_up_after(n) for n in (1, 3, 4, 5)] == [False, False, True, True]
    with pytest.raises(ValueError, match="backoff"):
        DeliveryRetryPolicy(max_attempts=3, backoff_s=120.0, backoff_max_s=60.0)


def test_http_statuses_are_classified_for_retry() -> None:
    assert all(is_retryable_status(status) for status in (408, 429, 500, 502, 503, 504, 599))
    assert not any(is_retryable_status(status) for status in (301, 400, 401, 403, 404, 410, 413, 422))


def test_notice_payload_title_and_text() -> None:
    alert, event = alert_rows()
    notice = AlertNotice.from_rows(alert, event)
    assert notice.idempotency_key == "PFE/negative_spike/300@2026-03-02T14:00:00+00:00/fired@2026-03-02T14:00:00+00:00"
    payload = json.loads(notice.to_json())
    assert payload == {
        "schema_version": 1, "alert_id": 7, "dedup_key": alert.dedup_key, "idempotency_key": notice.idempotency_key,
        "event": "fired", "entity": "PFE", "rule": "negative_spike", "width_seconds": 300,
        "bucket_start": "2026-03-02T14:00:00+00:00", "first_bucket_start": "2026-03-02T14:00:00+00:00",
        "severity": "major", "state": "firing", "value": 0.62, "baseline": 0.18, "evidence": EVIDENCE,
        "fired_at": "2026-03-02T14:07:00+00:00", "resolved_at": None, "acked": False,
    }
    assert notice.to_json() == AlertNotice.from_rows(*alert_rows()).to_json(), "same rows, same bytes"
    assert notice.title() == "[MAJOR] PFE negative_spike fired (5m bucket 2026-03-02T14:00:00+00:00)"
    text = notice.text()
    assert text.splitlines()[0] == "PFE negative_spike fired: adverse_stories 0.62 vs baseline 0.18, severity major, state firing"
    for fact in ("12 adverse stories in 6h where 0.4 were expected", "chance 2e-06", "mean p_negative 0.81 vs 0.12",
                 "14 articles", "window 2026-03-02T08:05:00+00:00 to 2026-03-02T14:05:00+00:00",
                 "expected rate from its own history",
                 "- Pfizer recalls <batch> & halts plant (id art-1, p_negative 0.97", "(id art-2"):
        assert fact in text

    resolved_alert, resolved_event = alert_rows(kind="resolved")
    resolved_alert.resolved_at = T0
    resolved = AlertNotice.from_rows(resolved_alert, resolved_event)
    assert resolved.state == "resolved" and resolved.payload()["resolved_at"] == T0.isoformat()
    assert resolved.title().startswith("[RESOLVED] PFE")
    other_alert, _ = alert_rows(alert_id=8)
    with pytest.raises(ValueError, match="belongs to alert 7"):
        AlertNotice.from_rows(other_alert, event)


def test_event_labels_round_trip_and_reject_malformed_ones() -> None:
    label = event_label("escalated", BUCKET)
    assert label == "escalated@2026-03-02T14:00:00+00:00"
    assert parse_event_label(label) == ("escalated", BUCKET)
    for bad in ("escalated", "boom@2026-03-02T14:00:00+00:00", "fired@yesterday", "fired@2026-03-02T14:00:00"):
        with pytest.raises(ValueError):
            parse_event_label(bad)
    with pytest.raises(ValueError, match="time zone"):
        event_label("fired", BUCKET.replace(tzinfo=None))


def test_post_sorts_real_http_answers(http_endpoint: Callable[..., HttpEndpoint]) -> None:
    def failure(endpoint: HttpEndpoint, timeout_s: float = 5.0) -> DeliveryFailed:
        with pytest.raises(DeliveryFailed) as caught:
            post(endpoint.url, b"{}", {"Content-Type": "application/json"}, timeout_s)
        return caught.value

    assert post(http_endpoint(always(204)).url, b"{}", {}, 5.0) == 204
    busy = failure(http_endpoint(lambda _: (503, {"Retry-After": "42"})))
    assert not busy.permanent and busy.retry_after_s == 42.0 and "HTTP 503" in busy.reason
    assert not failure(http_endpoint(always(429))).permanent
    bad = failure(http_endpoint(always(400)))
    assert bad.permanent and "HTTP 400: answer" in bad.reason and "/hooks" not in bad.reason, "the URL path stays secret"
    moved = failure(http_endpoint(lambda _: (301, {"Location": "http://elsewhere/"})))
    assert moved.permanent and "final address" in moved.reason
    slow = failure(http_endpoint(always(200), delay_s=2.0), timeout_s=0.3)
    assert not slow.permanent
    closed_port = free_loopback_port()
    with pytest.raises(DeliveryFailed) as refused:
        post(f"http://127.0.0.1:{closed_port}/", b"{}", {}, 5.0)
    assert not refused.value.permanent and "cannot reach" in refused.value.reason


def test_channels_from_settings_follow_the_switches() -> None:
    everything = Settings.load({
        "FINSENT_ALERT_WEBHOOK_URL": "http://127.0.0.1:1/hook", "FINSENT_ALERT_SLACK_WEBHOOK_URL": "https://hooks.example/T1",
        "FINSENT_ALERT_SMTP_HOST": "mail.example", "FINSENT_ALERT_EMAIL_TO": "risk@example.com",
        "FINSENT_ALERT_KAFKA": "true",
    })
    channels = channels_from_settings(everything)
    assert list(channels) == ["log", "webhook", "slack", "email", "kafka"]
    assert all(name == channel.name for name, channel in channels.items())
    for channel in channels.values():
        channel.close()
    assert list(channels_from_settings(Settings.load({"FINSENT_ALERT_KAFKA": "false"}))) == ["log"]


# --- through the outbox ---------------------------------------------------------------------


@pytest.mark.integration
def test_webhook_recovers_from_503s_and_delivers_once_signed(engine: Engine, http_endpoint: Callable[..., HttpEndpoint]) -> None:
    endpoint = http_endpoint(fail_first(2))
    alert_id, label = store_alert(engine)
    assert queue(engine, alert_id, label, ["webhook"]) == 1
    clock = FakeClock(T0)
    outbox = dispatcher(engine, [WebhookChannel(endpoint.url, SECRET, timeout_s=5.0)], clock)

    assert outbox.dispatch_due() == DispatchReport(retried=1)
    assert outbox.dispatch_due() == DispatchReport(), "not due again before its backoff"
    clock.advance(PAST_ANY_BACKOFF)
    assert outbox.dispatch_due() == DispatchReport(retried=1)
    clock.advance(PAST_ANY_BACKOFF)
    assert outbox.dispatch_due() == DispatchReport(sent=1)
    clock.advance(timedelta(days=1))
    assert outbox.dispatch_due() == DispatchReport(), "a sent row is never sent again"

    assert len(endpoint.requests) == 3
    [row] = deliveries(engine)
    assert (row.status, row.attempts, row.sent_at, row.last_error) == ("sent", 3, clock.now - timedelta(days=1), None)
    accepted = endpoint.requests[-1]
    assert accepted.path == "/hooks/alerts"
    assert accepted.headers["content-type"] == "application/json"
    expected_key = f"PFE/negative_spike/300@{BUCKET.isoformat()}/{label}"
    assert {request.headers["idempotency-key"] for request in endpoint.requests} == {expected_key}
    assert all(verify_signature(request, SECRET) for request in endpoint.requests)
    assert not verify_signature(accepted, "wrong-secret")
    payload = accepted.json()
    assert payload["alert_id"] == alert_id and payload["idempotency_key"] == expected_key
    assert (payload["event"], payload["entity"], payload["severity"], payload["state"]) == ("fired", "PFE", "major", "firing")
    assert payload["evidence"]["top_negative"][0]["id"] == "art-1"


@pytest.mark.integration
def test_rejected_delivery_fails_at_once_and_logs_an_error(
    engine: Engine, http_endpoint: Callable[..., HttpEndpoint], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.alerting")
    endpoint = http_endpoint(always(400))
    alert_id, label = store_alert(engine)
    queue(engine, alert_id, label, ["webhook"])
    clock = FakeClock(T0)
    outbox = dispatcher(engine, [WebhookChannel(endpoint.url, timeout_s=5.0)], clock)

    assert outbox.dispatch_due() == DispatchReport(failed=1)
    clock.advance(PAST_ANY_BACKOFF)
    assert outbox.dispatch_due() == DispatchReport()
    assert len(endpoint.requests) == 1
    [row] = deliveries(engine)
    assert (row.status, row.attempts) == ("failed", 1) and "HTTP 400" in (row.last_error or "")
    [line] = [KeyValueFormatter().format(r) for r in caplog.records if r.getMessage() == "alert_delivery_failed"]
    assert "level=error" in line and "channel=webhook" in line and "why=permanent" in line
    assert "x-finsent-signature" not in endpoint.requests[0].headers, "no secret, no signature"


@pytest.mark.integration
def test_delivery_fails_after_max_attempts(engine: Engine, http_endpoint: Callable[..., HttpEndpoint]) -> None:
    endpoint = http_endpoint(always(503))
    alert_id, label = store_alert(engine)
    queue(engine, alert_id, label, ["webhook"])
    clock = FakeClock(T0)
    policy = DeliveryRetryPolicy(max_attempts=3, backoff_s=5.0, backoff_max_s=60.0)
    outbox = dispatcher(engine, [WebhookChannel(endpoint.url, timeout_s=5.0)], clock, policy)

    reports = []
    for _ in range(5):
        reports.append(outbox.dispatch_due())
        clock.advance(PAST_ANY_BACKOFF)
    assert reports == [DispatchReport(retried=1), DispatchReport(retried=1), DispatchReport(failed=1), DispatchReport(), DispatchReport()]
    assert len(endpoint.requests) == 3
    [row] = deliveries(engine)
    assert (row.status, row.attempts, row.sent_at) == ("failed", 3, None) and "HTTP 503" in (row.last_error or "")


@pytest.mark.integration
def test_a_new_dispatcher_resumes_pending_deliveries(engine: Engine, http_endpoint: Callable[..., HttpEndpoint]) -> None:
    endpoint = http_endpoint(fail_first(1))
    alert_id, label = store_alert(engine)
    queue(engine, alert_id, label, ["webhook", "log"])
    clock = FakeClock(T0)
    first = dispatcher(engine, [WebhookChannel(endpoint.url, timeout_s=5.0), LogChannel()], clock)
    assert first.dispatch_due() == DispatchReport(sent=1, retried=1)
    del first  # the process stops; only the rows remain

    clock.advance(PAST_ANY_BACKOFF)
    restarted = dispatcher(engine, [WebhookChannel(endpoint.url, timeout_s=5.0), LogChannel()], clock)
    assert restarted.dispatch_due() == DispatchReport(sent=1), "the webhook resumes; the log line is not repeated"
    clock.advance(PAST_ANY_BACKOFF)
    assert restarted.dispatch_due() == DispatchReport()
    assert len(endpoint.requests) == 2
    assert {(row.channel, row.status, row.attempts) for row in deliveries(engine)} == {("webhook", "sent", 2), ("log", "sent", 1)}


@pytest.mark.integration
def test_concurrent_dispatchers_deliver_each_row_exactly_once(engine: Engine, http_endpoint: Callable[..., HttpEndpoint]) -> None:
    endpoint = http_endpoint(always(200), delay_s=0.02)
    entities = [f"E{index:02d}" for index in range(24)]
    for entity in entities:
        alert_id, label = store_alert(engine, entity=entity)
        queue(engine, alert_id, label, ["webhook"])
    clock = FakeClock(T0)
    outboxes = [dispatcher(engine, [WebhookChannel(endpoint.url, timeout_s=5.0)], clock) for _ in range(2)]
    start = threading.Barrier(len(outboxes))
    reports: list[DispatchReport] = []
    errors: list[BaseException] = []

    def run(outbox: OutboxDispatcher) -> None:
        try:
            start.wait()
            reports.append(outbox.dispatch_due())
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(outbox,)) for outbox in outboxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sum(report.sent for report in reports) == len(entities)
    assert sum(report.retried + report.failed for report in reports) == 0
    delivered = sorted(request.json()["entity"] for request in endpoint.requests)
    assert delivered == entities, "every alert exactly once"
    assert all(row.status == "sent" and row.attempts == 1 for row in deliveries(engine))


@pytest.mark.integration
def test_delivery_to_a_channel_no_longer_configured_fails_with_the_reason(engine: Engine) -> None:
    alert_id, label = store_alert(engine)
    queue(engine, alert_id, label, ["slack", "log"])
    outbox = dispatcher(engine, [LogChannel()], FakeClock(T0))
    assert outbox.dispatch_due() == DispatchReport(sent=1, failed=1)
    slack = next(row for row in deliveries(engine) if row.channel == "slack")
    assert slack.status == "failed" and "FINSENT_ALERT_SLACK_WEBHOOK_URL" in (slack.last_error or "")


@pytest.mark.integration
def test_email_arrives_once_with_subject_body_and_derived_ids(
    engine: Engine, smtp_server: Callable[..., tuple[RecordingSmtpHandler, int]]
) -> None:
    handler, port = smtp_server()
    alert_id, label = store_alert(engine)
    queue(engine, alert_id, label, ["email"])
    channel = EmailChannel("127.0.0.1", port, "finsent@alerts.example", ["risk@example.com", "ops@example.com"],
                           starttls=False, timeout_s=5.0)
    clock = FakeClock(T0)
    outbox = dispatcher(engine, [channel], clock)
    assert outbox.dispatch_due() == DispatchReport(sent=1)
    clock.advance(PAST_ANY_BACKOFF)
    assert outbox.dispatch_due() == DispatchReport()

    [(sender, recipients, message)] = handler.messages
    assert sender == "finsent@alerts.example" and recipients == ["risk@example.com", "ops@example.com"]
    assert message["Subject"] == "[MAJOR] PFE negative_spike fired (5m bucket 2026-03-02T14:00:00+00:00)"
    key = f"PFE/negative_spike/300@{BUCKET.isoformat()}/{label}"
    assert message["X-Finsent-Idempotency-Key"] == key
    assert message["Message-ID"] == f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@alerts.example>"
    body = message.get_content()
    assert "adverse_stories 0.62 vs baseline 0.18" in body and "id art-1" in body and "chance 2e-06" in body


@pytest.mark.integration
def test_email_refused_by_the_server_fails_without_retries(
    engine: Engine, smtp_server: Callable[..., tuple[RecordingSmtpHandler, int]]
) -> None:
    handler, port = smtp_server(refuse=frozenset({"nobody@example.com"}))
    alert_id, label = store_alert(engine)
    queue(engine, alert_id, label, ["email"])
    channel = EmailChannel("127.0.0.1", port, "finsent@localhost", ["nobody@example.com"], starttls=False, timeout_s=5.0)
    assert dispatcher(engine, [channel], FakeClock(T0)).dispatch_due() == DispatchReport(failed=1)
    [row] = deliveries(engine)
    assert "refused every recipient" in (row.last_error or "") and "550" in (row.last_error or "")
    assert handler.messages == []


@pytest.mark.integration
def test_slack_gets_a_mrkdwn_text_payload(engine: Engine, http_endpoint: Callable[..., HttpEndpoint]) -> None:
    endpoint = http_endpoint(always(200))
    alert_id, label = store_alert(engine)
    queue(engine, alert_id, label, ["slack"])
    assert dispatcher(engine, [SlackChannel(endpoint.url, timeout_s=5.0)], FakeClock(T0)).dispatch_due() == DispatchReport(sent=1)
    [request] = endpoint.requests
    assert request.headers["content-type"].startswith("application/json")
    payload = request.json()
    assert list(payload) == ["text"]
    text = payload["text"]
    assert text.startswith("*[MAJOR] PFE negative_spike fired (5m bucket 2026-03-02T14:00:00+00:00)*\n")
    assert "Pfizer recalls &lt;batch&gt; &amp; halts plant (id art-1" in text, "Slack control characters escaped"


@pytest.mark.integration
def test_kafka_channel_publishes_keyed_json_with_the_idempotency_header(engine: Engine, kafka_bootstrap: str) -> None:
    topic = f"alerts-delivery-{uuid.uuid4().hex[:10]}"
    ensure_topics(KafkaOptions(kafka_bootstrap), [topic], 1)
    alert_id, label = store_alert(engine)
    queue(engine, alert_id, label, ["kafka"])
    channel = KafkaChannel(KafkaOptions(kafka_bootstrap, client_id="finsent-test-alerts"), topic, timeout_s=15.0)
    try:
        assert dispatcher(engine, [channel], FakeClock(T0)).dispatch_due() == DispatchReport(sent=1)
    finally:
        channel.close()
    [record] = read_topic(kafka_bootstrap, topic, expected=1, idle_s=1.0)
    key = f"PFE/negative_spike/300@{BUCKET.isoformat()}/{label}"
    assert record.key == b"PFE"
    assert dict(record.headers) == {"finsent-idempotency-key": key.encode(), "finsent-event": b"fired"}
    payload = json.loads(record.value)
    assert payload["idempotency_key"] == key and payload["alert_id"] == alert_id


@pytest.mark.integration
def test_routes_pick_channels_and_enqueueing_twice_adds_nothing(
    engine: Engine, http_endpoint: Callable[..., HttpEndpoint], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.alerting")
    endpoint = http_endpoint(always(200))
    settings = Settings.load({
        "FINSENT_ALERT_WEBHOOK_URL": endpoint.url, "FINSENT_ALERT_WEBHOOK_SECRET": SECRET, "FINSENT_ALERT_KAFKA": "false",
        "FINSENT_ALERT_ROUTES": "log:*:warning; webhook:PFE,BANK*:major; slack:*:warning",
    })
    channels = channels_from_settings(settings)
    enabled = list(channels)
    assert enabled == ["log", "webhook"]

    queued: dict[str, list[str]] = {}
    for entity, severity in (("PFE", "major"), ("BANKX", "warning"), ("JPM", "critical")):
        alert_id, label = store_alert(engine, entity=entity, severity=severity)
        routed = channels_for(entity, severity, enabled, alert_routes(settings))
        queued[entity] = routed
        with Session(engine) as session, session.begin():
            assert enqueue_deliveries(session, alert_id, label, routed) == len(routed)
            assert enqueue_deliveries(session, alert_id, label, routed) == 0, "ON CONFLICT DO NOTHING"
    assert queued == {"PFE": ["log", "webhook"], "BANKX": ["log"], "JPM": ["log"]}

    outbox = OutboxDispatcher(engine, channels, retry_policy(settings))
    assert outbox.dispatch_due() == DispatchReport(sent=4), "due at once: enqueued at the database's now()"
    [request] = endpoint.requests
    assert request.json()["entity"] == "PFE" and verify_signature(request, SECRET)
    lines = [KeyValueFormatter().format(r) for r in caplog.records if r.getMessage() == "alert_notice"]
    assert len(lines) == 3 and all("level=warning" in line and "top_negative_ids=art-1,art-2" in line for line in lines)
    with Session(engine) as session:
        with pytest.raises(ValueError, match="unknown channel"):
            enqueue_deliveries(session, 1, event_label("fired", BUCKET), ["pager"])
        with pytest.raises(ValueError, match="event label"):
            enqueue_deliveries(session, 1, "fired", ["log"])
