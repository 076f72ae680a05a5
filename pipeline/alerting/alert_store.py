"""The lifecycle's states to and from the alert tables: firing alerts in, transitions out, inside
the caller's transaction (the statements are storage/alerts.py's).

When another scheduler already stored a transition, its insert does nothing (the tables' unique
keys) and no delivery is queued twice.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from pipeline.alerting.candidate import StoredMoment
from pipeline.alerting.lifecycle import FIRED, AlertState, Transition
from pipeline.alerting.notice import event_label
from pipeline.alerting.outbox import enqueue_deliveries
from storage.alerts import (
    alert_id_for,
    alert_silenced,
    firing_alerts,
    insert_alert,
    insert_alert_event,
    update_alert,
)

Evidence = Callable[[AlertState], dict[str, Any]]
Router = Callable[[str, str], Sequence[str]]
"""(entity, severity) -> channel names the alert goes to."""


@dataclass
class StoreReport:
    transitions: dict[str, int] = field(default_factory=dict)
    deliveries: int = 0
    already_stored: int = 0
    silenced: int = 0
    fired: dict[tuple[str, str], int] = field(default_factory=dict)
    """New alerts by (rule, severity), for the alerts-raised metric."""


def load_firing(session: Session, width_seconds: int) -> dict[str, AlertState]:
    return {
        alert.fingerprint: AlertState(
            fingerprint=alert.fingerprint, entity=alert.entity, rule=alert.rule, width_seconds=alert.width_seconds,
            first_bucket=alert.bucket_start, last_bucket=alert.last_bucket_start, severity=alert.severity,
            value=alert.value, baseline=alert.baseline, quiet_buckets=alert.quiet_buckets,
            last_notified_at=alert.last_notified_at or alert.bucket_start, acked=alert.acked_at is not None,
            alert_id=alert.id, candidate=StoredMoment(dict((alert.evidence or {}).get("latest") or alert.evidence or {})),
            first=_stored((alert.evidence or {}).get("first")), peak=_stored((alert.evidence or {}).get("peak")),
        )
        for alert in firing_alerts(session, width_seconds)
    }


def _stored(evidence: Mapping[str, Any] | None) -> StoredMoment | None:
    return StoredMoment(dict(evidence)) if evidence else None


def is_silenced(entity: str, globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(entity.upper(), glob.upper()) for glob in globs)


def store_transitions(
    session: Session,
    transitions: Sequence[Transition],
    still_firing: Mapping[str, AlertState],
    evidence: Evidence,
    route: Router | None,
    silences: Sequence[str] = (),
) -> StoreReport:
    """Write the transitions in order, queue their deliveries (`route` None: queue nothing, as in a
    backtest written to the tables), then save the lifecycle state of the alerts still firing."""
    report = StoreReport()
    ids: dict[str, int] = {}
    lost: set[str] = set()
    silenced_keys: set[str] = set()
    for transition in transitions:
        state = transition.state
        key = state.dedup_key
        if key in lost:
            continue
        if transition.kind == FIRED:
            silenced = is_silenced(state.entity, silences)
            alert_id = insert_alert(session, {
                **_alert_values(state, evidence(state)), "dedup_key": key, "fingerprint": state.fingerprint,
                "entity": state.entity, "rule": state.rule, "width_seconds": state.width_seconds,
                "bucket_start": state.first_bucket, "silenced": silenced})
            if alert_id is None:
                lost.add(key)
                report.already_stored += 1
                continue
            if silenced:
                silenced_keys.add(key)
        else:
            alert_id = ids.get(key) or state.alert_id or alert_id_for(session, key)
            if alert_id is None:
                continue
            update_alert(session, alert_id, _alert_values(state, evidence(state)))
        ids[key] = alert_id
        if not insert_alert_event(session, alert_id, transition.kind, transition.bucket_start, state.severity, state.value):
            report.already_stored += 1
            continue
        report.transitions[transition.kind] = report.transitions.get(transition.kind, 0) + 1
        if transition.kind == FIRED:
            report.fired[(state.rule, state.severity)] = report.fired.get((state.rule, state.severity), 0) + 1
        if key in silenced_keys or (transition.kind != FIRED and alert_silenced(session, alert_id)):
            report.silenced += 1
        elif route is not None:
            report.deliveries += enqueue_deliveries(
                session, alert_id, event_label(transition.kind, transition.bucket_start), route(state.entity, state.severity))
    for state in still_firing.values():
        if state.dedup_key in lost:
            continue
        alert_id = ids.get(state.dedup_key) or state.alert_id
        if alert_id is not None:
            # The latest trigger's numbers and evidence, so an alert always describes one moment.
            update_alert(session, alert_id, {
                "last_bucket_start": state.last_bucket, "quiet_buckets": state.quiet_buckets, "value": state.value,
                "baseline": state.baseline, "evidence": evidence(state)}, only_firing=True)
    return report


def _alert_values(state: AlertState, evidence: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "value": state.value, "baseline": state.baseline, "severity": state.severity,
        "state": "firing" if state.firing else "resolved", "resolved_at": state.resolved_at,
        "last_notified_at": state.last_notified_at, "last_bucket_start": state.last_bucket,
        "quiet_buckets": state.quiet_buckets,
    }
    if state.firing:
        values["evidence"] = evidence
    return values
