"""Re-posting firing alerts to Alertmanager, which resolves any alert whose endsAt has passed.

The outbox posts each alert event once (fired, escalated, repeated, resolved), exactly as on every
other channel. Between events, the scheduler calls `AlertmanagerResender.resend_due` on each delivery
tick: it takes the alerts still firing whose first post went through (a sent `alertmanager` delivery)
and posts again those due, which pushes their endsAt one lease ahead. The schedule lives in the
channel's memory: after a restart every firing alert is due at once, which is harmless (Alertmanager
merges a re-post into the alert it has).

A resend that fails is logged and tried again one interval later, not retried through the outbox:
the lease outlasts several intervals, and the next resend carries the same state anyway.
Resends run on the scheduler's single worker thread, after the outbox pass, so a resend never races
the post of a resolution.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pipeline.alerting.channels.alertmanager import AlertmanagerChannel, Clock, utc_now
from pipeline.alerting.channels.channel import DeliveryFailed
from pipeline.alerting.notice import AlertNotice
from storage.resend_queries import firing_alerts_sent_on

log = logging.getLogger(__name__)


def due_for_resend(firing: Iterable[int], last_posted: Mapping[int, datetime], now: datetime,
                   interval: timedelta) -> list[int]:
    """The firing alert ids to post again now: never posted (by this process), or posted at least
    `interval` ago. In the order given."""
    return [alert_id for alert_id in firing
            if alert_id not in last_posted or now - last_posted[alert_id] >= interval]


@dataclass(frozen=True)
class ResendReport:
    resent: int = 0
    failed: int = 0


class AlertmanagerResender:
    def __init__(self, engine: Engine, channel: AlertmanagerChannel, clock: Clock = utc_now) -> None:
        self._engine = engine
        self._channel = channel
        self._clock = clock
        self._attempted: dict[int, datetime] = {}
        """alert id -> last failed resend: a down Alertmanager is tried once an interval, not every tick."""

    def resend_due(self) -> ResendReport:
        now = self._clock()
        with Session(self._engine) as session:
            notices = {alert.id: AlertNotice.from_rows(alert, event)
                       for alert, event in firing_alerts_sent_on(session, self._channel.name)}
        posted = self._channel.last_posted()
        self._attempted = {alert_id: at for alert_id, at in self._attempted.items() if alert_id in notices}
        schedule = {alert_id: max(at for at in (posted.get(alert_id), self._attempted.get(alert_id)) if at is not None)
                    for alert_id in posted.keys() | self._attempted.keys()}
        resent = failed = 0
        for alert_id in due_for_resend(notices, schedule, now, self._channel.resend):
            try:
                self._channel.send(notices[alert_id])
            except DeliveryFailed as failure:
                failed += 1
                self._attempted[alert_id] = now
                log.warning("alertmanager_resend_failed", extra={"kv": {
                    "alert_id": alert_id, "retry_in_s": self._channel.resend.total_seconds(), "error": failure.reason,
                }})
                continue
            resent += 1
        return ResendReport(resent, failed)
