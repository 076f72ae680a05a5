"""Replay a JSONL or CSV file of news onto the topic, with progress, a rate limit or time compression.

Every line is checked against the message contract first; lines that break it are skipped and
reported (line number and reason) instead of being sent to fill the dead-letter topic.
`speedup` keeps the original spacing of event times, divided by the factor, on an absolute
schedule so sleeps never drift.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kafka import KafkaProducer
from kafka.errors import KafkaError

from consumers.schema import NewsItem, RejectedMessage, TimeWindow, parse_news

CSV_FIELDS = ("id", "published_at", "headline", "body", "source", "url", "lang", "tickers")
_TICKER_SEPARATORS = re.compile(r"[|,;\s]+")
MAX_REPORTED_SKIPS = 5


class ReplayFileError(Exception):
    """The file cannot be replayed as a whole (missing, unreadable, unknown format)."""


@dataclass(frozen=True)
class ReplayLine:
    line_number: int
    value: bytes
    item: NewsItem


_Check = Callable[[int, bytes], "ReplayLine | tuple[int, RejectedMessage]"]
"""Checks one line's bytes against the message contract."""


@dataclass
class ReplaySummary:
    sent: int = 0
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def note_skip(self, line_number: int, rejection: RejectedMessage) -> None:
        self.skipped += 1
        if len(self.skipped_examples) < MAX_REPORTED_SKIPS:
            self.skipped_examples.append(f"line {line_number}: {rejection.reason}")


def read_news_file(
    path: Path, max_message_bytes: int, time_window: TimeWindow | None = None
) -> Iterator[ReplayLine | tuple[int, RejectedMessage]]:
    """Yield each record as a checked ReplayLine, or (line number, rejection) for a bad one."""
    lines = _open_text(path)
    check = _checker(max_message_bytes, time_window or TimeWindow())
    if _format_of(path) == "csv":
        yield from _csv_records(lines, path, check)
    else:
        yield from _jsonl_records(lines, check)


def count_records(path: Path) -> int:
    """Number of records, for the progress bar total (one pass over the file, no parsing)."""
    total = sum(1 for line in _open_text(path) if line.strip())
    return max(0, total - 1) if _format_of(path) == "csv" else total


def replay(
    path: Path,
    producer: KafkaProducer,
    topic: str,
    *,
    rate_per_s: float | None = None,
    speedup: float | None = None,
    max_message_bytes: int = 1_048_576,
    time_window: TimeWindow | None = None,
    progress: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplaySummary:
    """Send every valid record of `path` to `topic`, keyed by article id; waits for all acks."""
    summary = ReplaySummary()
    started = time.monotonic()
    first_event: datetime | None = None
    futures = []
    for index, entry in enumerate(read_news_file(path, max_message_bytes, time_window)):
        if isinstance(entry, tuple):
            summary.note_skip(*entry)
            if progress:
                progress(1)
            continue
        due = _due_at(entry.item.published_at, first_event, speedup, rate_per_s, summary.sent)
        if first_event is None:
            first_event = entry.item.published_at
        wait = due - (time.monotonic() - started)
        if wait > 0:
            sleep(wait)
        try:
            futures.append(producer.send(topic, key=entry.item.id.encode("utf-8"), value=entry.value))
        except KafkaError as error:
            raise ReplayFileError(f"sending line {entry.line_number} to topic {topic} failed: {error}") from error
        summary.sent += 1
        if progress:
            progress(1)
        if index % 1000 == 999:
            futures = [future for future in futures if not (future.is_done and future.succeeded())]
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    summary.elapsed_s = time.monotonic() - started
    return summary


def _due_at(
    event_time: datetime, first_event: datetime | None, speedup: float | None, rate_per_s: float | None, sent: int
) -> float:
    due = 0.0
    if speedup and first_event is not None:
        due = max(due, (event_time - first_event).total_seconds() / speedup)
    if rate_per_s:
        due = max(due, sent / rate_per_s)
    return due


def _format_of(path: Path) -> str:
    suffixes = [suffix.lower() for suffix in path.suffixes if suffix.lower() != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if kind == ".csv":
        return "csv"
    if kind in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ReplayFileError(f"{path}: unknown file type {kind or '(none)'!r}; use .jsonl, .ndjson or .csv (optionally .gz)")


def _open_text(path: Path) -> Iterator[str]:
    _format_of(path)
    if not path.exists():
        raise ReplayFileError(f"{path}: file not found")
    if path.is_dir():
        raise ReplayFileError(f"{path}: is a directory, expected a .jsonl or .csv file")
    try:
        raw = gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")  # noqa: SIM115 - closed by the with below
        with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
            yield from text
    except UnicodeDecodeError as error:
        raise ReplayFileError(f"{path}: not UTF-8 text ({error}); save it as UTF-8") from None
    except (OSError, EOFError) as error:
        raise ReplayFileError(f"{path}: cannot be read ({error})") from None


def _jsonl_records(lines: Iterator[str], check: _Check) -> Iterator[ReplayLine | tuple[int, RejectedMessage]]:
    for line_number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        value = stripped.encode("utf-8")
        yield check(line_number, value)


def _csv_records(
    lines: Iterator[str], path: Path, check: _Check
) -> Iterator[ReplayLine | tuple[int, RejectedMessage]]:
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or "published_at" not in reader.fieldnames:
        raise ReplayFileError(f"{path}: expected a CSV header with published_at and headline/body columns ({', '.join(CSV_FIELDS)})")
    for row in reader:
        document: dict[str, object] = {
            name: row[name] for name in CSV_FIELDS if name != "tickers" and row.get(name) not in (None, "")
        }
        tickers = [t for t in _TICKER_SEPARATORS.split(row.get("tickers") or "") if t]
        if tickers:
            document["tickers"] = tickers
        value = json.dumps(document, ensure_ascii=False).encode("utf-8")
        yield check(reader.line_num, value)


def _checker(max_message_bytes: int, time_window: TimeWindow) -> _Check:
    """The message contract as the worker applies it, for one file's lines."""

    def check(line_number: int, value: bytes) -> ReplayLine | tuple[int, RejectedMessage]:
        parsed = parse_news(value, max_message_bytes, time_window)
        if isinstance(parsed, RejectedMessage):
            return (line_number, parsed)
        return ReplayLine(line_number, value, parsed)

    return check
