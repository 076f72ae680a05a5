"""The outbox's statements: delivery rows queued with their alert event, claimed one at a time, settled.

The dispatcher (pipeline/alerting/outbox.py) sends; this module only moves rows. A claim takes
the row lock `FOR UPDATE SKIP LOCKED` inside the caller's transaction and keeps it while the
caller sends, so two dispatchers never send the same row at once; the caller settles the row in
that same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from storage.models import Alert, AlertEvent, Delivery


def insert_deliveries(session: Session | Connection, alert_id: int, event_label: str, channels: Sequence[str],
                      due_at: datetime | None = None) -> int:
    """One pending row per channel; ON CONFLICT (alert_id, channel, event) DO NOTHING, so queueing an
    event again adds nothing. `due_at` defaults to the database's now(). Returns the new rows."""
    if not channels:
        return 0
    due = {} if due_at is None else {"next_attempt_at": due_at}
    rows = [
        {"alert_id": alert_id, "channel": channel, "event": event_label, "status": "pending", "attempts": 0, **due}
        for channel in channels
    ]
    statement = (
        insert(Delivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["alert_id", "channel", "event"])
        .returning(Delivery.id)
    )
    return len(session.execute(statement).all())


def claim_due_delivery(session: Session, now: datetime, skip_ids: Sequence[int]) -> Delivery | None:
    """The pending delivery due longest (at `now`), locked for this transaction; rows other
    dispatchers hold, and `skip_ids` (tried in this round already), are passed over."""
    query = select(Delivery).where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
    if skip_ids:
        query = query.where(Delivery.id.not_in(skip_ids))
    query = query.order_by(Delivery.next_attempt_at, Delivery.id).limit(1).with_for_update(skip_locked=True)
    return session.scalars(query).first()


def delivery_subject(session: Session, delivery: Delivery, kind: str, bucket_start: datetime) -> tuple[Alert, AlertEvent] | None:
    """The alert and the event a delivery notifies, or None when either is gone."""
    alert = session.get(Alert, delivery.alert_id)
    event = session.scalars(
        select(AlertEvent).where(
            AlertEvent.alert_id == delivery.alert_id, AlertEvent.kind == kind, AlertEvent.bucket_start == bucket_start
        )
    ).first()
    return None if alert is None or event is None else (alert, event)


def settle_sent(delivery: Delivery, sent_at: datetime) -> None:
    delivery.status = "sent"
    delivery.attempts += 1
    delivery.sent_at = sent_at
    delivery.last_error = None


def settle_retry(delivery: Delivery, error: str, next_attempt_at: datetime) -> None:
    delivery.attempts += 1
    delivery.last_error = error
    delivery.next_attempt_at = next_attempt_at


def settle_failed(delivery: Delivery, error: str) -> None:
    delivery.attempts += 1
    delivery.last_error = error
    delivery.status = "failed"
