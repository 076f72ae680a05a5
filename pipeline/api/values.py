"""Stored values as JSON values: pandas' NaN and NaT become null, timestamps plain datetimes."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pandas as pd


def number(value: Any) -> float | None:
    """A float, or None for a missing value (None, NaN, an infinity JSON cannot carry)."""
    if value is None:
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def moment(value: Any) -> datetime | None:
    if value is None or value is pd.NaT:
        return None
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value
