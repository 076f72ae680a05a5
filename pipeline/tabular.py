"""Query results on the command line: one writer of DataFrames as table, JSON or CSV, shared by the
alert and query commands so that every listing reads alike and pipes into the same tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

FORMATS = ("table", "json", "csv")
_WIDTH_UNITS = (("d", 86400), ("h", 3600), ("m", 60))


def emit_frame(frame: pd.DataFrame, form: str, out: Path | None = None, empty: str = "no rows") -> None:
    """Write `frame` to stdout (or `out`). json: a list of objects, times in ISO 8601 UTC, missing
    values null; csv: a header and one line per row; table: aligned columns for people, `-` for a
    missing value and the `empty` line instead of a bare header."""
    if form == "json":
        text = json.dumps(json.loads(frame.to_json(orient="records", date_format="iso")), indent=2) + "\n"
    elif form == "csv":
        text = frame.to_csv(index=False)
    else:
        text = (frame.to_string(index=False, na_rep="-") if not frame.empty else empty) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {len(frame)} rows to {out}", file=sys.stderr)


def width_label(seconds: int) -> str:
    """300 -> '5m', 3600 -> '1h', 5400 -> '90m': the largest unit that divides the width, as people
    write FINSENT_BUCKET_WIDTHS (the SQL views use the same rule)."""
    for unit, size in _WIDTH_UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
