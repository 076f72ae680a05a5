"""Which firing alerts a channel has already announced: what the Alertmanager resender posts again.

Read-only. The outbox (storage/outbox.py) still sends every event exactly once; this only finds the
alerts whose first notice on a channel went through and that are still firing, each with its
latest event (an escalation's severity, not the first one).
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from storage.models import Alert, AlertEvent, Delivery


def firing_alerts_sent_on(session: Session, channel: str) -> list[tuple[Alert, AlertEvent]]:
    """(alert, latest event) for each firing alert with a delivery sent on `channel`, oldest alert first."""
    sent = exists().where(Delivery.alert_id == Alert.id, Delivery.channel == channel, Delivery.status == "sent")
    alerts = session.scalars(select(Alert).where(Alert.state == "firing", Alert.resolved_at.is_(None), sent)
                             .order_by(Alert.id)).all()
    if not alerts:
        return []
    events = session.scalars(
        select(AlertEvent)
        .where(AlertEvent.alert_id.in_([alert.id for alert in alerts]), AlertEvent.kind != "resolved")
        .order_by(AlertEvent.alert_id, AlertEvent.bucket_start.desc(), AlertEvent.id.desc())
        .distinct(AlertEvent.alert_id)
    ).all()
    latest = {event.alert_id: event for event in events}
    return [(alert, latest[alert.id]) for alert in alerts if alert.id in latest]
