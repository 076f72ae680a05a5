"""A tagged headline CSV as news messages: `published_at,ticker,headline,source`, one row per
(headline, ticker) pair, as the real-news sets for alert quality come (see bench/alerts_real.py).

- Each row is one message with `tickers: [ticker]`, its `source`, and an id derived from headline,
  ticker and date: the same headline tagged with two tickers is two articles, and the same row
  read twice is one (the worker's first write wins).
- A date-only row (the publisher's date) gets a time of day from a hash of its headline, between
  08:00 and 20:00 UTC. All of a day's headlines at midnight would be one artificial burst; the
  hash spreads them deterministically, so every run replays the same stream. Rows with a time
  keep it (it must carry a zone).
- Every message is checked against the worker's contract (`parse_news`), so a row the worker
  would dead-letter is reported here instead of being waited for.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

from consumers.schema import RejectedMessage, parse_news
from pipeline.moments import parse_moment

COLUMNS = ("published_at", "ticker", "headline", "source")
DAY_START = time(8, 0)
DAY_SPAN = timedelta(hours=12)
"""Date-only rows are spread over [08:00, 20:00) UTC."""
MAX_REPORTED_SKIPS = 5
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class TaggedNewsError(Exception):
    """The file cannot be read as a tagged headline CSV; the message names the file and the fix."""


@dataclass(frozen=True)
class TaggedMessage:
    id: str
    published_at: datetime
    ticker: str
    value: bytes
    """The message as it goes onto the news topic (UTF-8 JSON)."""


@dataclass
class TaggedNews:
    messages: list[TaggedMessage]
    """One per distinct id, oldest first."""
    rows: int = 0
    duplicates: int = 0
    """Rows whose id an earlier row already had (the same headline, ticker and date twice)."""
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)


def read_tagged_news(path: Path) -> TaggedNews:
    if not path.is_file():
        raise TaggedNewsError(f"--news {path}: {'is a directory' if path.is_dir() else 'not found'}; "
                              f"give a CSV with the columns {','.join(COLUMNS)}")
    news = TaggedNews(messages=[])
    seen: set[str] = set()
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in COLUMNS if name not in (reader.fieldnames or [])]
            if missing:
                raise TaggedNewsError(f"--news {path}: no column {', '.join(missing)}; the header must name "
                                      f"{','.join(COLUMNS)}")
            for row in reader:
                news.rows += 1
                message = tagged_message(row)
                if isinstance(message, str):
                    news.skipped += 1
                    if len(news.skipped_examples) < MAX_REPORTED_SKIPS:
                        news.skipped_examples.append(f"line {reader.line_num}: {message}")
                elif message.id in seen:
                    news.duplicates += 1
                else:
                    seen.add(message.id)
                    news.messages.append(message)
    except UnicodeDecodeError as error:
        raise TaggedNewsError(f"--news {path}: not UTF-8 text ({error}); save it as UTF-8") from None
    news.messages.sort(key=lambda message: (message.published_at, message.id))
    return news


def tagged_message(row: dict[str, str | None]) -> TaggedMessage | str:
    """The row's message, or why the worker would refuse it."""
    headline = (row.get("headline") or "").strip()
    ticker = (row.get("ticker") or "").strip().upper()
    try:
        published_at = event_time((row.get("published_at") or "").strip(), headline)
    except ValueError as error:
        return f"published_at {error}"
    document: dict[str, object] = {
        "id": article_id(headline, ticker, published_at),
        "published_at": published_at.isoformat().replace("+00:00", "Z"),
        "headline": headline,
        "tickers": [ticker],
    }
    source = (row.get("source") or "").strip()
    if source:
        document["source"] = source
    value = json.dumps(document, ensure_ascii=False).encode("utf-8")
    parsed = parse_news(value)
    if isinstance(parsed, RejectedMessage):
        return parsed.reason
    return TaggedMessage(str(document["id"]), published_at, ticker, value)


def event_time(text: str, headline: str) -> datetime:
    """A date alone gets its hashed time of day; a time with a zone is kept (in UTC)."""
    if _DATE_ONLY.match(text):
        day = parse_moment(text)
        digest = int.from_bytes(hashlib.sha256(headline.encode("utf-8")).digest()[:8], "big")
        offset = timedelta(seconds=digest % int(DAY_SPAN.total_seconds()))
        return day + timedelta(hours=DAY_START.hour, minutes=DAY_START.minute) + offset
    return parse_moment(text).astimezone(timezone.utc)


def article_id(headline: str, ticker: str, published_at: datetime) -> str:
    key = "\x1f".join((headline, ticker, published_at.date().isoformat()))
    return "tagged-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
