"""Query results on the command line: one writer of DataFrames as table, JSON or CSV, shared by the
alert and query commands so that every listing reads alike and pipes into the same tools.

Text cells hold producers' headlines and ids, so each form is made safe for where it goes: a table
escapes control and bidi characters (a terminal shows them, never obeys them), a CSV cell that a
spreadsheet would run as a formula gets a leading single quote (and a CR inside a cell becomes a
quoted LF, so that it cannot start a forged row), and JSON escapes every non-ASCII character
(`\u202e`) by itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.durations import duration_text
from pipeline.safe_text import escape_controls, neutralise_formula

FORMATS = ("table", "json", "csv")


def emit_frame(frame: pd.DataFrame, form: str, out: Path | None = None, empty: str = "no rows") -> None:
    """Write `frame` to stdout (or `out`). json: a list of objects, times in ISO 8601 UTC, missing
    values null; csv: a header and one line per row; table: aligned columns for people, `-` for a
    missing value and the `empty` line instead of a bare header."""
    if form == "json":
        text = json.dumps(json.loads(frame.to_json(orient="records", date_format="iso")), indent=2) + "\n"
    elif form == "csv":
        text = _map_text_cells(frame, _csv_cell).to_csv(index=False)
    else:
        text = (_map_text_cells(frame, escape_controls).to_string(index=False, na_rep="-") if not frame.empty else empty) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {len(frame)} rows to {out}", file=sys.stderr)


def _csv_cell(text: str) -> str:
    """Formula-safe, and every line break a LF: the csv module quotes a cell holding a LF but not one
    holding a lone CR, which spreadsheets and csv readers take for the end of the row."""
    return neutralise_formula(text).replace("\r\n", "\n").replace("\r", "\n")


def _map_text_cells(frame: pd.DataFrame, change: Callable[[str], str]) -> pd.DataFrame:
    """`frame` with `change` applied to every string cell; numbers, times and missing values as they were."""
    def cell(value: Any) -> Any:
        return change(value) if isinstance(value, str) else value

    safe = frame.copy()
    for position in range(frame.shape[1]):
        values = frame.iloc[:, position]
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values)):
            safe.isetitem(position, values.map(cell))
    return safe


def clock_text(moment: datetime | pd.Timestamp) -> str:
    """'2026-03-02 14:05' in UTC, with four-digit years (strftime writes year 1 as '1')."""
    moment = moment.to_pydatetime() if isinstance(moment, pd.Timestamp) else moment
    return moment.astimezone(timezone.utc).isoformat(sep=" ", timespec="minutes").removesuffix("+00:00")


width_label = duration_text
"""300 -> '5m', 3600 -> '1h', 5400 -> '90m': a width as people write FINSENT_BUCKET_WIDTHS (the SQL
views use the same rule); the inverse of the settings' duration parser, which it is."""
