"""An alert's evidence: why it fired, where it peaked and where it stands, each a whole moment.

Each moment (first, peak, latest) is one candidate of detection with its own numbers and the
most adverse headlines of its horizon window, so value, baseline, rarity and headlines always
describe the same bucket. The latest moment's fields are also at the top level, where the
`recent_alerts` view and the notifications read them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pipeline.alerting.lifecycle import AlertState, as_datetime
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


def moment_evidence(entity: str, row: Mapping[str, Any], width: int, headlines: Headlines) -> dict[str, Any]:
    """One candidate as evidence; a row that already is evidence (reloaded from the database) stays as it is."""
    if "bucket_end" in row or "bucket_start" not in row:
        return {key: value for key, value in row.items() if key not in ("first", "peak", "latest")}
    bucket = as_datetime(row["bucket_start"])
    end = bucket + timedelta(seconds=width)
    horizon = int(row.get("horizon_seconds") or width)
    window_start = end - timedelta(seconds=horizon)
    evidence: dict[str, Any] = {name: _number(row.get(name)) for name in _NUMBERS}
    evidence.update({
        "observed": evidence["value"],
        "expected": evidence["baseline"],
        "horizon": width_label(horizon),
        "horizon_seconds": horizon,
        "article_count": int(row.get("article_count") or 0),
        "baseline_source": row.get("baseline_source"),
        "metric": row.get("metric"),
        "severity": row.get("severity"),
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
