"""Reading a file of known events (`ticker,event_date`) to score alerts against: a user's own past
incidents for `finsent backtest --events`, or a benchmark's list."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pandas as pd

from pipeline.errors import UserError

EVENT_FILE_COLUMNS = ("ticker", "event_date")


def read_events(path: Path, option: str = "--events") -> pd.DataFrame:
    """Columns ticker (upper-cased, as the worker stores tickers) and event_date (a date), one row
    per line; other columns are ignored. Every problem is a UserError naming the file, line and fix."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "not found"
        raise UserError(f"{option} {path}: {what}; give a CSV file with the columns {','.join(EVENT_FILE_COLUMNS)}")
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            missing = [name for name in EVENT_FILE_COLUMNS if name not in header]
            if missing:
                raise UserError(f"{option} {path}: no column {', '.join(missing)} in its header {','.join(header) or '(empty)'}; "
                                f"the first line must name the columns {','.join(EVENT_FILE_COLUMNS)} (e.g. ACME,2026-03-02 below it)")
            reader.fieldnames = header
            rows = [_event(row, path, reader.line_num, option) for row in reader]
    except UnicodeDecodeError as error:
        raise UserError(f"{option} {path}: not UTF-8 text ({error}); save it as UTF-8") from None
    except OSError as error:
        raise UserError(f"{option} {path}: cannot be read ({error})") from None
    return pd.DataFrame(rows, columns=list(EVENT_FILE_COLUMNS))


def _event(row: dict[str, str | None], path: Path, line: int, option: str) -> dict[str, object]:
    ticker = (row.get("ticker") or "").strip().upper()
    text = (row.get("event_date") or "").strip()
    if not ticker:
        raise UserError(f"{option} {path} line {line}: empty ticker; every event needs one (e.g. ACME)")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option} {path} line {line}: event_date {text!r} is not a date; write it as YYYY-MM-DD") from None
    return {"ticker": ticker, "event_date": day}
