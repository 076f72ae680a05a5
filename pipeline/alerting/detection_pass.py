"""One live detection pass: judge the buckets closed since the last pass, advance every alert, store.

A bucket is closed once the watermark has passed its end by the allowed lateness. The watermark
is event time: the newest article's published_at (capped at the wall clock), so a replay of
yesterday's news is judged bucket by bucket just like live news; when nothing has been ingested
for `idle_close`, the wall clock takes over so the last buckets of a quiet stream still close.
The watermark never runs ahead of the wall clock, whatever time an article claims: one article
dated 9999 (stored before validation refused such times) must not mark the future as judged.

A pass judges every bucket closed since the last one, however many: after downtime, or on a
database holding a long replay it has never judged (then from its first bucket), it judges them
all, with the backtest's own code (`judging.judge_span`), so live equals backtest.

The whole pass is one transaction under a transaction-level advisory lock: two passes (two
scheduler replicas, or a pass and `finsent backtest --write`) run one after the other, the
second sees the first one's progress, and a crash leaves nothing half-judged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pipeline.alerting.alert_store import Router, StoreReport, load_firing, store_transitions
from pipeline.alerting.evidence import build_evidence
from pipeline.alerting.judging import judge_span
from pipeline.alerting.lifecycle import AlertState, LifecyclePolicy
from pipeline.alerting.rules import DetectionRules
from pipeline.series import bucket_start
from storage.alerts import active_silence_globs, evaluated_through, set_evaluated_through
from storage.locks import lock_detection_passes
from storage.queries import first_bucket, ingest_watermark, top_negative_articles

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class DetectionSchedule:
    widths: tuple[int, ...]
    lateness: timedelta
    idle_close: timedelta
    market_entity: str


@dataclass
class PassReport:
    watermark: datetime | None = None
    judged: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)
    candidates: int = 0
    stored: StoreReport = field(default_factory=StoreReport)
    firing: int = 0
    duration_ms: float = 0.0

    @property
    def judged_buckets(self) -> int:
        return sum(_buckets(span, width) for width, span in self.judged.items())

    def log_fields(self) -> dict[str, Any]:
        return {
            "watermark": self.watermark.isoformat() if self.watermark else "none",
            "judged_buckets": self.judged_buckets,
            "candidates": self.candidates,
            **{kind: self.stored.transitions.get(kind, 0) for kind in ("fired", "escalated", "repeated", "resolved")},
            "deliveries_queued": self.stored.deliveries,
            "already_stored": self.stored.already_stored,
            "firing": self.firing,
            "duration_ms": round(self.duration_ms, 1),
        }


def closing_watermark(newest_event: datetime | None, newest_ingest: datetime | None, now: datetime,
                      idle_close: timedelta) -> datetime | None:
    if newest_event is None or newest_ingest is None:
        return None
    if now - newest_ingest >= idle_close:
        return now
    return min(newest_event, now)


class DetectionPass:
    def __init__(
        self,
        engine: Engine,
        rules: DetectionRules,
        policy: LifecyclePolicy,
        schedule: DetectionSchedule,
        route: Router,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._engine = engine
        self._rules = rules
        self._policy = policy
        self._schedule = schedule
        self._route = route
        self._clock = clock

    def run(self, close_all: bool = False) -> PassReport:
        """Judge what closed since the last pass; `close_all` treats every bucket up to the newest
        article as closed (the end of a replay, when no more news is coming)."""
        started = time.perf_counter()
        report = PassReport()
        now = self._clock()
        with Session(self._engine) as session, session.begin():
            lock_detection_passes(session.connection())
            newest_event, newest_ingest = ingest_watermark(session.connection())
            if close_all and newest_event is not None:
                report.watermark = min(newest_event, now)
            else:
                report.watermark = closing_watermark(newest_event, newest_ingest, now, self._schedule.idle_close)
            if report.watermark is not None:
                silences = active_silence_globs(session, now)
                for width in self._schedule.widths:
                    self._judge_width(session, width, report, close_all, silences)
        report.duration_ms = (time.perf_counter() - started) * 1000
        return report

    def _judge_width(self, session: Session, width: int, report: PassReport, close_all: bool, silences: list[str]) -> None:
        assert report.watermark is not None
        step = timedelta(seconds=width)
        if close_all:
            last_closed = bucket_start(report.watermark, width)
        else:
            last_closed = bucket_start(report.watermark - self._schedule.lateness - step, width)
        done = evaluated_through(session, width)
        if done is None:
            done = first_bucket(session.connection(), width)
            if done is None:
                return
            done -= step
        judge_from, judge_through = done + step, last_closed
        if judge_from > judge_through:
            return
        span = judge_span(session.connection(), width, judge_from, judge_through, self._rules, self._policy,
                          self._schedule.market_entity, load_firing(session, width))
        stored = store_transitions(session, span.transitions, span.firing, evidence_reader(session, width), self._route,
                                   silences)
        set_evaluated_through(session, width, judge_through)
        report.judged[width] = (judge_from, judge_through)
        report.candidates += span.candidates
        report.firing += len(span.firing)
        for kind, count in stored.transitions.items():
            report.stored.transitions[kind] = report.stored.transitions.get(kind, 0) + count
        report.stored.deliveries += stored.deliveries
        report.stored.already_stored += stored.already_stored
        report.stored.silenced += stored.silenced
        for key, count in stored.fired.items():
            report.stored.fired[key] = report.stored.fired.get(key, 0) + count


def evidence_reader(session: Session, width: int) -> Callable[[AlertState], dict[str, Any]]:
    """Evidence of an alert (first, peak and latest moments), with the most adverse headlines of each window."""
    cache: dict[tuple[str, datetime, datetime], list[dict[str, Any]]] = {}

    def headlines(entity: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        key = (entity, start, end)
        if key not in cache:
            cache[key] = top_negative_articles(session.connection(), entity, start, end)
        return cache[key]

    def evidence(state: AlertState) -> dict[str, Any]:
        return build_evidence(state, width, headlines)

    return evidence


def _buckets(span: tuple[datetime, datetime], width: int) -> int:
    return int((span[1] - span[0]).total_seconds() // width) + 1
