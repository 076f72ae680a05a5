"""`finsent backtest`: the live detection and lifecycle over stored history, as if a scheduler had
judged every bucket when it closed, without sending anything.

It judges the span with the live pass's own code (`judging.judge_span`) and returns one row per
alert episode with its evidence at first trigger and at its peak. The one difference from live:
it sees late articles that a live pass, judging a bucket once `FINSENT_ALERT_LATENESS` after its
end, might have missed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pipeline.alerting.alert_store import StoreReport, store_transitions
from pipeline.alerting.evidence import build_evidence, moment_evidence
from pipeline.alerting.judging import Progress, judge_span
from pipeline.alerting.lifecycle import ESCALATED, FIRED, REPEATED, RESOLVED, AlertState, LifecyclePolicy, Transition
from pipeline.alerting.rules import DetectionRules
from pipeline.series import bucket_start
from storage.locks import lock_detection_passes
from storage.queries import top_negative_articles

ALERT_COLUMNS = [
    "entity", "rule", "width_seconds", "fired_bucket", "severity", "max_severity", "horizon", "value", "baseline",
    "tail_probability", "baseline_source", "peak_bucket", "peak_value", "peak_tail_probability", "escalations",
    "repeats", "resolved_at", "top_negative",
]


@dataclass(frozen=True)
class BacktestResult:
    alerts: pd.DataFrame
    transitions: list[Transition]
    buckets: int
    entities: int


def run_backtest(
    engine: Engine,
    rules: DetectionRules,
    policy: LifecyclePolicy,
    width_seconds: int,
    start: datetime,
    end: datetime,
    market_entity: str,
    entity: str | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    first = bucket_start(start, width_seconds)
    last = bucket_start(end - timedelta(microseconds=1), width_seconds)
    entities = None if entity is None else sorted({entity, market_entity})
    with engine.connect() as connection:
        span = judge_span(connection, width_seconds, first, last, rules, policy, market_entity, {}, entities, progress)
        transitions = span.transitions
        if entity is not None:
            transitions = [t for t in transitions if t.state.entity == entity]
        alerts = _episodes(transitions, lambda name, s, e: top_negative_articles(connection, name, s, e), width_seconds)
    return BacktestResult(alerts, transitions, span.buckets, len(span.entities))


def write_backtest(engine: Engine, result: BacktestResult, width_seconds: int) -> StoreReport:
    """Store the backtest's alerts and events in the live tables, queueing no notification."""
    with Session(engine) as session, session.begin():
        connection = session.connection()
        lock_detection_passes(connection)

        def evidence(state: AlertState) -> dict[str, Any]:
            return build_evidence(state, width_seconds, lambda e, s, t: top_negative_articles(connection, e, s, t))

        still_firing = {t.state.fingerprint: t.state for t in result.transitions if t.state.firing}
        return store_transitions(session, result.transitions, still_firing, evidence, route=None)


def _episodes(transitions: Sequence[Transition], headlines: Callable[[str, datetime, datetime], list[dict[str, Any]]],
              width_seconds: int) -> pd.DataFrame:
    rows: dict[str, dict[str, Any]] = {}
    for transition in transitions:
        state = transition.state
        if transition.kind == FIRED:
            first = moment_evidence(state.entity, state.first or state.candidate, width_seconds, headlines)
            rows[state.dedup_key] = {
                "entity": state.entity, "rule": state.rule, "width_seconds": state.width_seconds,
                "fired_bucket": state.first_bucket, "severity": state.severity, "max_severity": state.severity,
                "horizon": first.get("horizon"), "value": first.get("observed"), "baseline": first.get("expected"),
                "tail_probability": first.get("tail_probability"), "baseline_source": first.get("baseline_source"),
                "peak_bucket": state.first_bucket, "peak_value": first.get("observed"),
                "peak_tail_probability": first.get("tail_probability"), "escalations": 0, "repeats": 0,
                "resolved_at": None, "top_negative": first.get("top_negative", []),
            }
        row = rows.get(state.dedup_key)
        if row is None:
            continue
        if state.peak:
            peak = moment_evidence(state.entity, state.peak, width_seconds, lambda *_: [])
            row["peak_bucket"] = pd.Timestamp(peak["bucket_start"])
            row["peak_value"] = peak.get("observed")
            row["peak_tail_probability"] = peak.get("tail_probability")
        if transition.kind == ESCALATED:
            row["escalations"] += 1
            row["max_severity"] = state.severity
        elif transition.kind == REPEATED:
            row["repeats"] += 1
        elif transition.kind == RESOLVED:
            row["resolved_at"] = state.resolved_at
    return pd.DataFrame(list(rows.values()), columns=ALERT_COLUMNS)
