"""Listings of hostile headlines: CSV cells a spreadsheet would run are neutralised, tables show
control and bidi characters as escapes, JSON stays valid JSON with every such character escaped."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

from pipeline.safe_text import escape_controls, neutralise_formula
from pipeline.tabular import emit_frame

HEADLINES = [
    "=HYPERLINK(\"http://evil.example\",\"click\")",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\tTabbed",
    "\rReturned",
    "Plain headline",
    "Clear\x1b[2J\x1b]0;owned\x07screen",
    "forged\r\nts=2026-03-02 level=info",
    "line\u2028separator\u2029paragraph",
    "bidi \u202egnp.exe\u202c and \u2066isolate\u2069",
    "harmless\r=HYPERLINK(\"http://evil.example\")",
]


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [f"id-{i}" for i in range(len(HEADLINES))],
        "headline": HEADLINES,
        "sentiment": [-0.5 - i / 100 for i in range(len(HEADLINES))],
        "article_count": list(range(-5, len(HEADLINES) - 5)),
        "published_at": pd.date_range("2026-03-02", periods=len(HEADLINES), freq="min", tz="UTC"),
    })


def written(frame: pd.DataFrame, form: str, capsys: pytest.CaptureFixture[str]) -> str:
    emit_frame(frame, form)
    return capsys.readouterr().out


def test_csv_text_cells_that_a_spreadsheet_would_run_start_with_a_quote(
    frame: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = list(csv.DictReader(io.StringIO(written(frame, "csv", capsys), newline="")))
    assert len(rows) == len(HEADLINES), "a CR inside a headline starts no row of its own"
    headlines = [row["headline"] for row in rows]
    assert headlines[:5] == ["'" + headline for headline in HEADLINES[:5]]
    assert headlines[5] == "'\nReturned", "line breaks inside a cell are written as a quoted LF"
    assert [headlines[i] for i in (6, 7, 9, 10)] == [HEADLINES[i] for i in (6, 7, 9, 10)], "other text is written as it is"
    assert headlines[8] == "forged\nts=2026-03-02 level=info"
    assert headlines[-1] == "harmless\n=HYPERLINK(\"http://evil.example\")"
    assert [float(row["sentiment"]) for row in rows] == list(frame["sentiment"]), "negative numbers stay numbers"
    assert [int(row["article_count"]) for row in rows] == list(frame["article_count"])
    assert all(not row["sentiment"].startswith("'") and not row["article_count"].startswith("'") for row in rows)


def test_table_cells_show_control_and_bidi_characters_as_escapes(
    frame: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    text = written(frame, "table", capsys)
    lines = text.splitlines()
    assert len(lines) == len(HEADLINES) + 1, "no headline breaks a row"
    assert all(ch.isprintable() for line in lines for ch in line), "every character on the terminal is printable"
    for needle in ("Clear\\x1b[2J\\x1b]0;owned\\x07screen", "forged\\r\\nts=2026-03-02", "line\\u2028separator\\u2029paragraph",
                   "bidi \\u202egnp.exe\\u202c and \\u2066isolate\\u2069", "\\tTabbed", "-0.50"):
        assert needle in text, needle


def test_json_stays_valid_and_escapes_every_control_and_bidi_character(
    frame: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    text = written(frame, "json", capsys)
    assert text.isascii(), "bidi overrides and separators are \\u escapes, never raw"
    assert all(ch.isprintable() or ch in "\n" for ch in text)
    assert [row["headline"] for row in json.loads(text)] == HEADLINES, "the data itself is unchanged"


def test_escaping_leaves_ordinary_unicode_alone() -> None:
    text = "Société Générale 株式会社 👩‍💻 naïve – “quoted”"
    assert escape_controls(text) == text
    assert neutralise_formula(text) == text
    assert neutralise_formula("") == ""
