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
    """One row of `rules.CANDIDATE_COLUMNS`: an entity at a bucket, judged at its rarest horizon."""

    entity: str
    rule: str
    """negative_news for a company, market_negative_news for the market-wide entity."""
    bucket_start: datetime
    severity: str
    """From the rarity: the expected false alarms per entity-year at this tail probability."""
    value: float
    """Stories counted over the horizon (adverse, or risk-event ones for that metric)."""
    baseline: float
    """Stories the entity's expected rate predicts over the same horizon."""
    triggered: bool = True
    """False for a hot bucket: still past the threshold but not a trigger (it keeps a firing alert open)."""
    width_seconds: int | None = None
    horizon_seconds: int | None = None
    """The horizon the value was counted over (1h, 6h, 1d, 3d by default)."""
    tail_probability: float | None = None
    """Chance of a count at least this high under the negative-binomial model (looks corrected)."""
    false_alarms_per_year: float | None = None
    """The tail probability as false alarms per entity-year, the unit of the alarm budget."""
    threshold: float | None = None
    """The tail probability the alarm budget allows."""
    adverse_stories: float | None = None
    """Distinct adverse stories in the horizon: the minimum evidence is counted in these."""
    article_count: int = 0
    baseline_stories: float | None = None
    """Adverse stories in the entity's own trailing window."""
    exposure_days: float | None = None
    """Days of the entity's own history behind the baseline."""
    own_weight: float | None = None
    """Share of the baseline from the entity's own history; the rest is the peers' prior."""
    prior_rate: float | None = None
    """The peers' leave-one-out median rate of adverse stories per day."""
    mean_p_negative: float | None = None
    """Mean p_negative of the horizon's articles, beside its baseline below."""
    baseline_p_negative: float | None = None
    baseline_source: str | None = None
    """own when the entity's history carries the baseline, else prior."""
    metric: str | None = None
    """adverse_stories or risk_event_stories: which count fired."""

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
