"""`finsent backtest`: the live detection and lifecycle over stored history, as if a scheduler had
judged every bucket when it closed, without sending anything.

It reads the history in slices (a week of buckets at a time, plus each slice's lookback), carries
the firing alerts from slice to slice, and returns one row per alert episode with its evidence.
The one difference from live: it sees late articles that a live pass, judging a bucket once
`FINSENT_ALERT_LATENESS` after its end, might have missed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from pipeline.alerting.alert_store import StoreReport, store_transitions
from pipeline.alerting.detection_pass import PASS_LOCK_KEY, build_evidence
from pipeline.alerting.lifecycle import ESCALATED, FIRED, REPEATED, RESOLVED, AlertState, LifecyclePolicy, Transition, advance
from pipeline.alerting.rules import DetectionRules, detect
from pipeline.timesteps import bucket_start
from storage.queries import timesteps_window, top_negative_articles

SLICE_BUCKETS = 2016
"""Buckets judged per slice: a week of 5-minute buckets."""

ALERT_COLUMNS = [
    "entity", "rule", "width_seconds", "fired_bucket", "severity", "max_severity", "value", "baseline", "z_score",
    "article_count", "baseline_source", "escalations", "repeats", "resolved_at", "top_negative",
]

Progress = Callable[[int, int], None]
"""(buckets judged so far, buckets in all)."""


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
    step = timedelta(seconds=width_seconds)
    first = bucket_start(start, width_seconds)
    last = bucket_start(end - timedelta(microseconds=1), width_seconds)
    total = max(0, int((last - first) // step) + 1)
    entities = None if entity is None else sorted({entity, market_entity})
    firing: dict[str, AlertState] = {}
    transitions: list[Transition] = []
    seen: set[str] = set()
    done = 0
    with engine.connect() as connection:
        slice_start = first
        while slice_start <= last:
            slice_end = min(last, slice_start + (SLICE_BUCKETS - 1) * step)
            frame = timesteps_window(connection, width_seconds, slice_start - rules.lookback_buckets * step,
                                     slice_end + step, entities)
            seen.update(frame["entity"].unique())
            candidates = detect(frame, width_seconds, slice_start, slice_end, rules, market_entity)
            if entity is not None:
                candidates = candidates[candidates["entity"] == entity]
            firing, changes = advance(firing, candidates.to_dict("records"), width_seconds, slice_start, slice_end, policy)
            transitions.extend(changes)
            done += int((slice_end - slice_start) // step) + 1
            if progress is not None:
                progress(done, total)
            slice_start = slice_end + step
        alerts = _episodes(transitions, lambda name, s, e: top_negative_articles(connection, name, s, e), width_seconds)
    return BacktestResult(alerts, transitions, total, len(seen))


def write_backtest(engine: Engine, result: BacktestResult, width_seconds: int) -> StoreReport:
    """Store the backtest's alerts and events in the live tables, queueing no notification."""
    with Session(engine) as session, session.begin():
        session.execute(select(func.pg_advisory_xact_lock(PASS_LOCK_KEY)))
        connection = session.connection()

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
            evidence = build_evidence(state, width_seconds, headlines)
            rows[state.dedup_key] = {
                "entity": state.entity, "rule": state.rule, "width_seconds": state.width_seconds,
                "fired_bucket": state.first_bucket, "severity": state.severity, "max_severity": state.severity,
                "value": evidence["value"], "baseline": evidence["baseline"], "z_score": evidence["z_score"],
                "article_count": evidence["article_count"], "baseline_source": evidence["baseline_source"],
                "escalations": 0, "repeats": 0, "resolved_at": None, "top_negative": evidence["top_negative"],
            }
            continue
        row = rows.get(state.dedup_key)
        if row is None:
            continue
        if transition.kind == ESCALATED:
            row["escalations"] += 1
            row["max_severity"] = state.severity
        elif transition.kind == REPEATED:
            row["repeats"] += 1
        elif transition.kind == RESOLVED:
            row["resolved_at"] = state.resolved_at
    return pd.DataFrame(list(rows.values()), columns=ALERT_COLUMNS)
