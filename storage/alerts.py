"""The alert tables' statements: alert episodes, their events, detection progress, acks and silences.

The lifecycle (pipeline/alerting/lifecycle.py) decides what happens; these functions only move
rows, inside the caller's session where the caller owns the transaction. The unique dedup key
(fingerprint @ first bucket), the partial unique index (one firing alert per fingerprint) and the
unique (alert, kind, bucket) of alert_events are the last guards against a second scheduler:
the inserts here do nothing on conflict and say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from storage.models import Alert, AlertEvent, ArticleEntity, DetectionProgress, Silence


def firing_alerts(session: Session, width_seconds: int) -> Sequence[Alert]:
    """The alerts of this width still firing, as rows (the lifecycle turns them back into states)."""
    return session.scalars(select(Alert).where(Alert.state == "firing", Alert.width_seconds == width_seconds)).all()


def insert_alert(session: Session, values: Mapping[str, Any]) -> int | None:
    """A new alert episode; None when one with its dedup key is already stored (another scheduler)."""
    return session.execute(insert(Alert).values(**values).on_conflict_do_nothing().returning(Alert.id)).scalar()


def update_alert(session: Session, alert_id: int, values: Mapping[str, Any], *, only_firing: bool = False) -> None:
    statement = update(Alert).where(Alert.id == alert_id)
    if only_firing:
        statement = statement.where(Alert.state == "firing")
    session.execute(statement.values(**values))


def alert_id_for(session: Session, dedup_key: str) -> int | None:
    return session.execute(select(Alert.id).where(Alert.dedup_key == dedup_key)).scalar()


def alert_silenced(session: Session, alert_id: int) -> bool:
    """Whether the alert was silenced when it fired (its later events stay silent)."""
    return bool(session.execute(select(Alert.silenced).where(Alert.id == alert_id)).scalar())


def insert_alert_event(session: Session, alert_id: int, kind: str, bucket_start: datetime, severity: str,
                       value: float | None) -> bool:
    """Record one transition; False when it is already stored (nothing to notify again)."""
    inserted = session.execute(
        insert(AlertEvent).values(alert_id=alert_id, kind=kind, bucket_start=bucket_start, severity=severity, value=value)
        .on_conflict_do_nothing()
        .returning(AlertEvent.id)
    ).scalar()
    return inserted is not None


def evaluated_through(session: Session, width_seconds: int) -> datetime | None:
    """The start of the last bucket of this width that detection has judged, if any."""
    return session.execute(
        select(DetectionProgress.evaluated_through).where(DetectionProgress.width_seconds == width_seconds)
    ).scalar()


def set_evaluated_through(session: Session, width_seconds: int, bucket_start: datetime) -> None:
    statement = insert(DetectionProgress).values(width_seconds=width_seconds, evaluated_through=bucket_start)
    session.execute(statement.on_conflict_do_update(
        index_elements=[DetectionProgress.width_seconds],
        set_={"evaluated_through": statement.excluded.evaluated_through, "updated_at": statement.excluded.updated_at},
    ))


def active_silence_globs(session: Session, now: datetime) -> list[str]:
    return list(session.scalars(select(Silence.entity_glob).where(Silence.ends_at > now)))


@dataclass(frozen=True)
class AcknowledgedAlert:
    id: int
    entity: str
    rule: str
    state: str


def acknowledge_alert(engine: Engine, alert_id: int, now: datetime) -> AcknowledgedAlert | None:
    """Mark the alert acknowledged (once: a second ack keeps the first time); None when there is no such alert."""
    with Session(engine) as session, session.begin():
        row = session.execute(select(Alert.entity, Alert.rule, Alert.state).where(Alert.id == alert_id)).first()
        if row is None:
            return None
        session.execute(update(Alert).where(Alert.id == alert_id, Alert.acked_at.is_(None)).values(acked_at=now))
    return AcknowledgedAlert(alert_id, row.entity, row.rule, row.state)


def add_silence(engine: Engine, entity_glob: str, ends_at: datetime, reason: str) -> list[str]:
    """Store the silence; returns every entity with stored articles, for the caller to say which it covers."""
    return create_silence(engine, entity_glob, ends_at, reason)[1]


@dataclass(frozen=True)
class StoredSilence:
    id: int
    entity_glob: str
    ends_at: datetime
    reason: str
    created_at: datetime


def create_silence(engine: Engine, entity_glob: str, ends_at: datetime, reason: str) -> tuple[StoredSilence, list[str]]:
    """`add_silence` that also returns the stored row (its id ends it early: `end_silence`)."""
    with Session(engine) as session, session.begin():
        silence = Silence(entity_glob=entity_glob, ends_at=ends_at, reason=reason)
        session.add(silence)
        session.flush()
        session.refresh(silence)
        stored = StoredSilence(silence.id, silence.entity_glob, silence.ends_at, silence.reason, silence.created_at)
        return stored, list(session.scalars(select(ArticleEntity.entity).distinct().order_by(ArticleEntity.entity)))


def end_silence(engine: Engine, silence_id: int, now: datetime) -> bool:
    """End the silence at `now` (one already over keeps its end); False when there is no such silence."""
    with Session(engine) as session, session.begin():
        if session.execute(select(Silence.id).where(Silence.id == silence_id)).first() is None:
            return False
        session.execute(update(Silence).where(Silence.id == silence_id, Silence.ends_at > now).values(ends_at=now))
    return True
