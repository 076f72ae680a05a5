"""Alert lifecycle as a pure state machine over judged buckets (Alertmanager's ideas, event time).

A fingerprint (entity, rule, width) is either quiet or has one firing alert:

- quiet + the rule triggers at bucket b  -> a new alert fires (dedup key: fingerprint @ b);
- firing + triggers again                -> nothing new, unless its severity rose (escalated)
                                            or `repeat_interval` passed since the last notice
                                            and nobody acknowledged it (repeated);
- firing + `resolve_buckets` consecutive quiet buckets -> resolved. A bucket is quiet when it is
  empty or its value is back within the baseline; a "hot" bucket (value still past the threshold
  but, say, too few articles to trigger) is not quiet and not a trigger.

Times are bucket ends (event time), never the wall clock, so a live scheduler and a backtest over
the same history produce the same alerts.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pipeline.alerting.candidate import Candidate, Moment, rarity
from pipeline.alerting.severity import severity_rank

FIRED, ESCALATED, REPEATED, RESOLVED = "fired", "escalated", "repeated", "resolved"


def fingerprint(entity: str, rule: str, width_seconds: int) -> str:
    return f"{entity}/{rule}/{width_seconds}s"


def dedup_key(fingerprint_: str, first_bucket: datetime) -> str:
    return f"{fingerprint_}@{first_bucket.isoformat()}"


@dataclass(frozen=True)
class LifecyclePolicy:
    resolve_buckets: int = 3
    repeat_interval: timedelta = timedelta(hours=4)


@dataclass(frozen=True)
class AlertState:
    """What the lifecycle needs to know about one alert episode; `alert_id` is None until stored."""

    fingerprint: str
    entity: str
    rule: str
    width_seconds: int
    first_bucket: datetime
    last_bucket: datetime
    severity: str
    value: float
    baseline: float
    quiet_buckets: int
    last_notified_at: datetime
    acked: bool = False
    resolved_at: datetime | None = None
    alert_id: int | None = None
    candidate: Moment | None = None
    """The latest triggering candidate (detection's evidence)."""
    first: Moment | None = None
    """The candidate that fired the alert."""
    peak: Moment | None = None
    """The rarest candidate of the episode (smallest tail probability; the latest among equals)."""

    @property
    def firing(self) -> bool:
        return self.resolved_at is None

    @property
    def dedup_key(self) -> str:
        return dedup_key(self.fingerprint, self.first_bucket)


@dataclass(frozen=True)
class Transition:
    kind: str
    bucket_start: datetime
    state: AlertState
    """The alert as it is right after this transition."""


def advance(
    firing: Mapping[str, AlertState],
    candidates: Iterable[Candidate],
    width_seconds: int,
    judge_from: datetime,
    judge_through: datetime,
    policy: LifecyclePolicy,
) -> tuple[dict[str, AlertState], list[Transition]]:
    """Run every fingerprint over the judged buckets [judge_from, judge_through] of one width.

    `firing` holds the alerts firing before `judge_from`; `candidates` are detection's rows for
    these buckets. Returns the alerts still firing afterwards and the transitions in bucket order.
    """
    width = timedelta(seconds=width_seconds)
    triggers: dict[str, dict[datetime, Candidate]] = {}
    hot: dict[str, set[datetime]] = {}
    for row in candidates:
        key = fingerprint(row.entity, row.rule, width_seconds)
        if row.triggered:
            triggers.setdefault(key, {})[row.bucket_start] = row
        else:
            hot.setdefault(key, set()).add(row.bucket_start)
    still_firing: dict[str, AlertState] = {}
    transitions: list[Transition] = []
    for key in sorted(set(firing) | set(triggers)):
        state, changes = _run_one(firing.get(key), triggers.get(key, {}), hot.get(key, set()), width, judge_from,
                                  judge_through, policy)
        transitions.extend(changes)
        if state is not None and state.firing:
            still_firing[key] = state
    transitions.sort(key=lambda t: (t.bucket_start, t.state.fingerprint))
    return still_firing, transitions


def _run_one(
    state: AlertState | None,
    triggers: Mapping[datetime, Candidate],
    hot: set[datetime],
    width: timedelta,
    judge_from: datetime,
    judge_through: datetime,
    policy: LifecyclePolicy,
) -> tuple[AlertState | None, list[Transition]]:
    trigger_buckets = sorted(triggers)
    changes: list[Transition] = []
    bucket: datetime | None = judge_from if state is not None and state.firing else _next(trigger_buckets, judge_from)
    while bucket is not None and bucket <= judge_through:
        row = triggers.get(bucket)
        end = bucket + width
        if state is None or not state.firing:
            if row is None:
                bucket = _next(trigger_buckets, bucket)
                continue
            state = _fire(row, bucket, end, width)
            changes.append(Transition(FIRED, bucket, state))
        elif row is not None:
            severity = row.severity
            state = replace(state, last_bucket=bucket, quiet_buckets=0, value=row.value, baseline=row.baseline,
                            candidate=row, peak=row if rarity(row) <= rarity(state.peak) else state.peak)
            if severity_rank(severity) > severity_rank(state.severity):
                state = replace(state, severity=severity, last_notified_at=end)
                changes.append(Transition(ESCALATED, bucket, state))
            elif not state.acked and end - state.last_notified_at >= policy.repeat_interval:
                state = replace(state, last_notified_at=end)
                changes.append(Transition(REPEATED, bucket, state))
        elif bucket in hot:
            state = replace(state, last_bucket=bucket, quiet_buckets=0)
        else:
            state = replace(state, last_bucket=bucket, quiet_buckets=state.quiet_buckets + 1)
            if state.quiet_buckets >= policy.resolve_buckets:
                state = replace(state, resolved_at=end)
                changes.append(Transition(RESOLVED, bucket, state))
        bucket += width
    return state, changes


def _fire(row: Candidate, bucket: datetime, end: datetime, width: timedelta) -> AlertState:
    return AlertState(
        fingerprint=fingerprint(row.entity, row.rule, int(width.total_seconds())),
        entity=row.entity,
        rule=row.rule,
        width_seconds=int(width.total_seconds()),
        first_bucket=bucket,
        last_bucket=bucket,
        severity=row.severity,
        value=row.value,
        baseline=row.baseline,
        quiet_buckets=0,
        last_notified_at=end,
        candidate=row,
        first=row,
        peak=row,
    )


def _next(buckets: list[datetime], at_or_after: datetime) -> datetime | None:
    """The first trigger bucket at or after `at_or_after`: quiet stretches are skipped, not walked."""
    index = bisect.bisect_left(buckets, at_or_after)
    return buckets[index] if index < len(buckets) else None
