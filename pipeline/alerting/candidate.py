"""Detection's verdict on one entity and bucket, typed, as the lifecycle and the evidence read it.

`rules.detect` works on frames (vectorised over thousands of entities) and returns one row per
entity and triggered or hot bucket; `candidates_from` turns those rows into `Candidate`s for the
lifecycle. An alert reloaded from the database carries its moments as the evidence written then
(`StoredMoment`), not as candidates: both are a `Moment`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Candidate:
    """One row of `rules.CANDIDATE_COLUMNS`: the rarest horizon of an entity at a bucket."""

    entity: str
    rule: str
    bucket_start: datetime
    severity: str
    value: float
    baseline: float
    triggered: bool = True
    """False for a hot bucket: still past the threshold but not a trigger (it keeps a firing alert open)."""
    width_seconds: int | None = None
    horizon_seconds: int | None = None
    tail_probability: float | None = None
    false_alarms_per_year: float | None = None
    threshold: float | None = None
    adverse_stories: float | None = None
    article_count: int = 0
    baseline_stories: float | None = None
    exposure_days: float | None = None
    own_weight: float | None = None
    prior_rate: float | None = None
    mean_p_negative: float | None = None
    baseline_p_negative: float | None = None
    baseline_source: str | None = None
    metric: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Candidate:
        values = {name: _plain(row[name]) for name in _FIELDS if name in row}
        values["bucket_start"] = _moment(row["bucket_start"])
        for name in ("entity", "rule", "severity"):
            values[name] = str(row[name])
        for name in ("value", "baseline"):
            values[name] = float(row[name])
        for name in ("width_seconds", "horizon_seconds"):
            if values.get(name) is not None:
                values[name] = int(values[name])
        values["article_count"] = int(values.get("article_count") or 0)
        values["triggered"] = bool(values.get("triggered", True))
        return cls(**values)


@dataclass(frozen=True)
class StoredMoment:
    """A moment of an alert reloaded from the database: the evidence as it was written."""

    evidence: Mapping[str, Any]

    @property
    def tail_probability(self) -> float | None:
        value = self.evidence.get("tail_probability")
        return float(value) if isinstance(value, int | float) else None


Moment = Candidate | StoredMoment
_FIELDS = tuple(field.name for field in fields(Candidate))


def candidates_from(frame: pd.DataFrame) -> list[Candidate]:
    """`rules.detect`'s rows as candidates, in the frame's order."""
    return [Candidate.from_row(row) for row in frame.to_dict("records")]


def rarity(moment: Moment | None) -> float:
    """How rare a moment is: its tail probability (1 when unknown, so any real one is rarer)."""
    value = None if moment is None else moment.tail_probability
    return 1.0 if value is None or math.isnan(value) else value


def _moment(value: Any) -> datetime:
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, NaN and pandas' missing values as None."""
    if value is None or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
