"""An alert's evidence: why it fired, where it peaked and where it stands, each a whole moment.

Each moment (first, peak, latest) is one candidate of detection with its own numbers and the
most adverse headlines of its horizon window, so value, baseline, rarity and headlines always
describe the same bucket. The latest moment's fields are also at the top level, where the
`recent_alerts` view and the notifications read them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pipeline.alerting.candidate import Moment, StoredMoment
from pipeline.alerting.lifecycle import AlertState
from pipeline.tabular import width_label

Headlines = Callable[[str, datetime, datetime], list[dict[str, Any]]]
"""(entity, start, end) -> the most adverse articles published in [start, end)."""

_NUMBERS = ("value", "baseline", "tail_probability", "false_alarms_per_year", "threshold", "adverse_stories", "baseline_stories",
            "exposure_days", "own_weight", "prior_rate", "mean_p_negative", "baseline_p_negative")


def build_evidence(state: AlertState, width: int, headlines: Headlines) -> dict[str, Any]:
    latest = moment_evidence(state.entity, state.candidate, width, headlines)
    return {
        **latest,
        "first": moment_evidence(state.entity, state.first or state.candidate, width, headlines),
        "peak": moment_evidence(state.entity, state.peak or state.candidate, width, headlines),
        "latest": latest,
    }


def moment_evidence(entity: str, moment: Moment | None, width: int, headlines: Headlines) -> dict[str, Any]:
    """One candidate as evidence; a moment reloaded from the database stays as it was written."""
    if moment is None:
        return {}
    if isinstance(moment, StoredMoment):
        return {key: value for key, value in moment.evidence.items() if key not in ("first", "peak", "latest")}
    bucket = moment.bucket_start
    end = bucket + timedelta(seconds=width)
    horizon = moment.horizon_seconds or width
    window_start = end - timedelta(seconds=horizon)
    evidence: dict[str, Any] = {name: _number(getattr(moment, name)) for name in _NUMBERS}
    evidence.update({
        "observed": evidence["value"],
        "expected": evidence["baseline"],
        "horizon": width_label(horizon),
        "horizon_seconds": horizon,
        "article_count": moment.article_count,
        "baseline_source": moment.baseline_source,
        "metric": moment.metric,
        "severity": moment.severity,
        "bucket_start": bucket.isoformat(),
        "bucket_end": end.isoformat(),
        "window_start": window_start.isoformat(),
        "top_negative": headlines(entity, window_start, end),
    })
    return evidence


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return float(f"{number:.6g}") if math.isfinite(number) else None
