"""Judging a span of closed buckets: the one code path of live passes and backtests.

Reads the stored history a week of buckets at a time (with each slice's horizons and trailing
hours), runs the pure detection (`rules.detect`) and lifecycle (`lifecycle.advance`) over it, and
carries the firing alerts from slice to slice. A live pass judges what closed since the last
one, a backtest a chosen span: the same buckets give the same alerts, however the span is cut.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection

from pipeline.alerting.candidate import candidates_from
from pipeline.alerting.lifecycle import AlertState, LifecyclePolicy, Transition, advance
from pipeline.alerting.rules import DetectionRules, detect, history_edges
from storage.queries import buckets_window, first_bucket, history_bands

SLICE_BUCKETS = 2016
"""Buckets judged per slice: a week of 5-minute buckets."""

Progress = Callable[[int, int], None]
"""(buckets judged so far, buckets in all)."""


@dataclass
class JudgedSpan:
    firing: dict[str, AlertState]
    transitions: list[Transition] = field(default_factory=list)
    buckets: int = 0
    candidates: int = 0
    entities: set[str] = field(default_factory=set)


def judge_span(
    connection: Connection,
    width_seconds: int,
    judge_from: datetime,
    judge_through: datetime,
    rules: DetectionRules,
    policy: LifecyclePolicy,
    market_entity: str,
    firing: dict[str, AlertState],
    entities: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> JudgedSpan:
    """Judge every bucket starting in [judge_from, judge_through], continuing from `firing`.

    `entities`: judge only these (a backtest of one entity); the prior still comes from everyone.
    """
    step = timedelta(seconds=width_seconds)
    total = max(0, int((judge_through - judge_from) // step) + 1)
    span = JudgedSpan(dict(firing))
    data_start = first_bucket(connection, width_seconds)
    slice_start = judge_from
    while slice_start <= judge_through:
        slice_end = min(judge_through, slice_start + (SLICE_BUCKETS - 1) * step)
        buckets = buckets_window(connection, width_seconds, slice_start - timedelta(seconds=rules.lookback_seconds),
                                   slice_end + step, entities)
        bands = history_bands(connection, width_seconds, history_edges(slice_start, slice_end, width_seconds, rules))
        candidates = detect(buckets, bands, data_start, width_seconds, slice_start, slice_end, rules, market_entity)
        if entities is not None:
            candidates = candidates[candidates["entity"].isin(entities)]
        span.entities.update(buckets["entity"].unique())
        span.candidates += int(candidates["triggered"].sum()) if not candidates.empty else 0
        span.firing, changes = advance(span.firing, candidates_from(candidates), width_seconds, slice_start, slice_end,
                                       policy)
        span.transitions.extend(changes)
        span.buckets += int((slice_end - slice_start) // step) + 1
        if progress is not None:
            progress(span.buckets, total)
        slice_start = slice_end + step
    return span
