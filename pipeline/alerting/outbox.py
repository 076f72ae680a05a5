"""The alert outbox: deliveries are rows, written with the alert event, sent later with retries.

Writing the `deliveries` row in the same transaction as the alert event means no event is lost
between "alert recorded" and "notification sent", whatever crashes in between. The dispatcher
then works through due rows, one short transaction per delivery:

    SELECT ... WHERE status = 'pending' AND next_attempt_at <= now FOR UPDATE SKIP LOCKED LIMIT 1
    send on the channel
    UPDATE: sent (sent_at) | pending again (attempts + 1, next_attempt_at) | failed (last_error)
    COMMIT

The row lock is held while sending, so two dispatchers (scheduler replicas) never send the same
row at the same time, and a row committed as sent is never picked again.

Guarantee: at-least-once, and exactly once unless the process dies (or the database connection
is lost) after the receiver accepted a notice but before the commit; that delivery is sent once
more on the next pass. Every channel carries the notice's idempotency key (the Idempotency-Key
header, the Kafka header, the Message-ID) so receivers can drop that repeat. A restart, or a new
dispatcher, simply resumes the pending rows with their attempt counts.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from pipeline.alerting.channels.channel import Channel, DeliveryFailed
from pipeline.alerting.delivery_retry import DeliveryRetryPolicy
from pipeline.alerting.notice import AlertNotice, parse_event_label
from pipeline.alerting.routing import CHANNEL_SWITCHES, CHANNELS
from storage.models import Delivery
from storage.outbox import (
    claim_due_delivery,
    delivery_subject,
    insert_deliveries,
    settle_failed,
    settle_retry,
    settle_sent,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Outcome = Literal["sent", "retried", "failed"]
MAX_ERROR_CHARS = 2_000


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def enqueue_deliveries(
    session: Session | Connection,
    alert_id: int,
    event_label: str,
    channels: Sequence[str],
    due_at: datetime | None = None,
) -> int:
    """One pending delivery per channel for this alert event, inside the caller's transaction.

    ON CONFLICT DO NOTHING on (alert_id, channel, event): enqueueing the same event again (a
    replayed detection pass, a second scheduler) adds nothing. `due_at` defaults to the database's
    now(). Returns the number of new rows.
    """
    parse_event_label(event_label)
    unknown = [channel for channel in channels if channel not in CHANNELS]
    if unknown:
        raise ValueError(f"unknown channel(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(CHANNELS)}")
    return insert_deliveries(session, alert_id, event_label, list(dict.fromkeys(channels)), due_at)


@dataclass(frozen=True)
class DispatchReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    by_channel: Mapping[tuple[str, Outcome], int] = field(default_factory=dict, compare=False)
    """(channel, outcome) -> deliveries, for the per-channel metrics; left out of equality."""


class OutboxDispatcher:
    """Sends due deliveries; safe to run in several processes or threads against one database."""

    def __init__(
        self,
        engine: Engine,
        channels: Mapping[str, Channel],
        policy: DeliveryRetryPolicy,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        batch_limit: int = 100,
    ) -> None:
        self._engine = engine
        self._channels = dict(channels)
        self._policy = policy
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._batch_limit = batch_limit

    def dispatch_due(self, now: datetime | None = None) -> DispatchReport:
        """Try every delivery due at `now` (default: the clock) once, at most batch_limit of them."""
        counts: dict[Outcome, int] = {"sent": 0, "retried": 0, "failed": 0}
        by_channel: dict[tuple[str, Outcome], int] = {}
        attempted: list[int] = []
        while len(attempted) < self._batch_limit:
            settled = self._dispatch_one(now, attempted)
            if settled is None:
                break
            counts[settled[1]] += 1
            by_channel[settled] = by_channel.get(settled, 0) + 1
        return DispatchReport(**counts, by_channel=by_channel)

    def _dispatch_one(self, fixed_now: datetime | None, attempted: list[int]) -> tuple[str, Outcome] | None:
        """Claim, send and settle one due delivery in one transaction: (channel, outcome), or None
        when nothing is due."""
        with Session(self._engine) as session, session.begin():
            delivery = claim_due_delivery(session, fixed_now or self._clock(), attempted)
            if delivery is None:
                return None
            attempted.append(delivery.id)
            try:
                self._send(session, delivery)
            except DeliveryFailed as failure:
                return delivery.channel, self._record_failure(delivery, failure, fixed_now or self._clock())
            settle_sent(delivery, fixed_now or self._clock())
            log.info("alert_delivered", extra={"kv": {**_fields(delivery), "attempts": delivery.attempts}})
            return delivery.channel, "sent"

    def _send(self, session: Session, delivery: Delivery) -> None:
        channel = self._channels.get(delivery.channel)
        if channel is None:
            raise DeliveryFailed(
                f"channel {delivery.channel!r} is not configured in this process "
                f"(turned on by {CHANNEL_SWITCHES.get(delivery.channel, 'nothing known')}); "
                "configure it, or remove it from FINSENT_ALERT_ROUTES",
                permanent=True,
            )
        notice = _notice(session, delivery)
        try:
            channel.send(notice)
        except DeliveryFailed:
            raise
        except Exception as error:  # a faulty channel must not stop the other deliveries
            log.exception("alert_channel_error", extra={"kv": _fields(delivery)})
            raise DeliveryFailed(f"{type(error).__name__}: {error}", permanent=False) from error

    def _record_failure(self, delivery: Delivery, failure: DeliveryFailed, now: datetime) -> Outcome:
        error = failure.reason[:MAX_ERROR_CHARS]
        attempt = delivery.attempts + 1  # this one, counted once it is settled below
        if failure.permanent or self._policy.gives_up_after(attempt):
            settle_failed(delivery, error)
            log.error(
                "alert_delivery_failed",
                extra={"kv": {
                    **_fields(delivery), "attempts": delivery.attempts,
                    "why": "permanent" if failure.permanent else "max_attempts", "error": failure.reason,
                }},
            )
            return "failed"
        delay_s = self._policy.delay_s(attempt, self._rng, failure.retry_after_s)
        settle_retry(delivery, error, now + timedelta(seconds=delay_s))
        log.warning(
            "alert_delivery_retry",
            extra={"kv": {
                **_fields(delivery), "attempts": delivery.attempts, "max_attempts": self._policy.max_attempts,
                "retry_in_s": round(delay_s, 3), "error": failure.reason,
            }},
        )
        return "retried"


def _notice(session: Session, delivery: Delivery) -> AlertNotice:
    """The notice a delivery stands for; a permanent failure when its alert or event is gone."""
    try:
        kind, bucket_start = parse_event_label(delivery.event)
    except ValueError as error:
        raise DeliveryFailed(str(error), permanent=True) from None
    subject = delivery_subject(session, delivery, kind, bucket_start)
    if subject is None:
        raise DeliveryFailed(
            f"alert {delivery.alert_id} has no event {delivery.event!r} in alert_events: nothing to notify",
            permanent=True,
        )
    return AlertNotice.from_rows(*subject)


def _fields(delivery: Delivery) -> dict[str, object]:
    return {"delivery_id": delivery.id, "alert_id": delivery.alert_id, "channel": delivery.channel, "event": delivery.event}
