"""The news message contract: bytes from the topic -> a typed `NewsItem`, or a `RejectedMessage` reason.

Rules (see DESIGN.md): UTF-8 JSON object; `published_at` ISO 8601 with a zone, inside the
accepted time window; headline or body non-empty; optional id (else sha256 of source +
published_at + headline), source, url, lang, tickers. Unknown fields are ignored so producers can
add fields without breaking workers.

Validation is total: whatever bytes arrive, `parse_news` returns a `NewsItem` or a
`RejectedMessage`, never raises (a property-based test holds it to that). Strict where parsers
disagree: duplicate keys, NaN/Infinity literals and lone surrogates are rejected rather than
resolved one way here and another way in a producer's or reader's JSON library.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

MAX_ID_CHARS = 256
MAX_HEADLINE_CHARS = 4_000
MAX_BODY_CHARS = 200_000
MAX_SHORT_FIELD_CHARS = {"source": 256, "url": 2_048, "lang": 16}
MAX_TICKERS = 64
MAX_TICKER_CHARS = 32
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576

_TICKER_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9.\-:/^=_]*$")

DEFAULT_MAX_FUTURE_SKEW = timedelta(minutes=5)
DEFAULT_EARLIEST_PUBLISHED_AT = datetime(1980, 1, 1, tzinfo=timezone.utc)


def _wall_clock() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class TimeWindow:
    """Event times a message may carry.

    Later than the wall clock plus `max_future_skew` is a wrong clock or zone at the producer (an
    article cannot be published in the future, and one dated 9999 would drag every event-time
    watermark with it); earlier than `earliest` is a placeholder date (0001-01-01, the Unix epoch)
    rather than news. Both are rejected as `bad_timestamp`.
    """

    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW
    earliest: datetime = DEFAULT_EARLIEST_PUBLISHED_AT
    clock: Callable[[], datetime] = _wall_clock

    def check(self, published_at: datetime, raw: str) -> None:
        try:
            latest = self.clock() + self.max_future_skew
        except OverflowError:
            latest = datetime.max.replace(tzinfo=timezone.utc)
        if published_at > latest:
            raise _Reject(
                "bad_timestamp",
                f"published_at {raw[:64]!r} is more than {_span(self.max_future_skew)} ahead of the wall clock "
                f"({latest.isoformat(timespec='seconds')} at the latest); fix the producer's clock or time zone, "
                "or raise FINSENT_MAX_FUTURE_SKEW",
            )
        if published_at < self.earliest:
            raise _Reject(
                "bad_timestamp",
                f"published_at {raw[:64]!r} is before {self.earliest.isoformat(timespec='seconds')}, which looks like "
                "a placeholder date; fix the producer, or lower FINSENT_EARLIEST_PUBLISHED_AT to keep older archives",
            )


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class NewsItem:
    id: str
    published_at: datetime
    headline: str
    body: str
    source: str | None = None
    url: str | None = None
    lang: str | None = None
    tickers: tuple[str, ...] | None = None
    """None when the producer gave no tickers (entities are then extracted from the text)."""
    id_derived: bool = field(default=False, compare=False)

    @property
    def text(self) -> str:
        """Headline and body as one text, the unit the model scores."""
        return "\n".join(part for part in (self.headline, self.body) if part)


@dataclass(frozen=True)
class RejectedMessage:
    """Why a message broke the contract. `kind` is a stable code; `reason` is for people."""

    kind: str
    reason: str


class _Reject(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.rejection = RejectedMessage(kind, reason)


def derive_id(source: str | None, published_at: datetime, headline: str) -> str:
    """Stable id for messages without one; the same article replayed or re-sent gets the same id.

    `surrogatepass` keeps the function total for any str (validated messages never carry lone
    surrogates, but a caller building items by hand may)."""
    canonical_time = published_at.astimezone(timezone.utc).isoformat()
    material = "\x1f".join((source or "", canonical_time, headline))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def parse_news(
    value: bytes | None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    time_window: TimeWindow | None = None,
) -> NewsItem | RejectedMessage:
    """Validate one message value. Never raises for bad input: returns the rejection instead."""
    try:
        return _parse(value, max_message_bytes, time_window or TimeWindow())
    except _Reject as rejected:
        return rejected.rejection


def _parse(value: bytes | None, max_message_bytes: int, time_window: TimeWindow) -> NewsItem:
    if value is None:
        raise _Reject("empty", "message has no value (tombstone); expected a JSON object")
    if len(value) == 0:
        raise _Reject("empty", "message value is empty; expected a JSON object")
    if len(value) > max_message_bytes:
        raise _Reject("oversized", f"message is {len(value)} bytes, over the limit of {max_message_bytes}")
    try:
        text = value.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _Reject("bad_encoding", f"message is not valid UTF-8: {error}") from None
    document = _json_document(text)
    if not isinstance(document, dict):
        raise _Reject("not_object", f"message is a JSON {type(document).__name__}, expected an object")

    published_at = _published_at(document, time_window)
    headline = _optional_text(document, "headline", MAX_HEADLINE_CHARS) or ""
    body = _optional_text(document, "body", MAX_BODY_CHARS) or ""
    if not headline.strip() and not body.strip():
        raise _Reject("empty_text", "headline and body are both missing or empty; at least one must have text")
    extras = {name: _optional_text(document, name, limit) for name, limit in MAX_SHORT_FIELD_CHARS.items()}
    tickers = _tickers(document)
    given_id = (_optional_text(document, "id", MAX_ID_CHARS) or "").strip()
    derived = not given_id
    article_id = derive_id(extras["source"], published_at, headline.strip()) if derived else given_id
    return NewsItem(
        id=article_id,
        published_at=published_at,
        headline=headline.strip(),
        body=body.strip(),
        source=extras["source"],
        url=extras["url"],
        lang=extras["lang"],
        tickers=tickers,
        id_derived=derived,
    )


def _json_document(text: str) -> Any:
    """Strict JSON (RFC 8259): no NaN/Infinity, no duplicate keys, numbers Python can hold."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_object_without_duplicates)
    except _Reject:
        raise
    except json.JSONDecodeError as error:
        raise _Reject("not_json", f"message is not JSON: {error}") from None
    except RecursionError:
        raise _Reject("not_json", "message JSON is nested too deeply") from None
    except ValueError:  # the only other ValueError: an integer over Python's int-parsing limit
        raise _Reject(
            "not_json", f"message has an integer of more than {sys.get_int_max_str_digits()} digits; send it as a string"
        ) from None


def _refuse_constant(name: str) -> Any:
    raise _Reject("not_json", f"message has the literal {name}, which is not JSON; send null or a string")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, item in pairs:
        if key in document:
            raise _Reject("duplicate_key", f"message has the key {key[:40]!r} more than once; send each field once")
        document[key] = item
    return document


def _published_at(document: dict[str, Any], time_window: TimeWindow) -> datetime:
    raw = document.get("published_at")
    if raw is None:
        raise _Reject("missing_field", "published_at is missing; expected an ISO 8601 time with a zone")
    if not isinstance(raw, str):
        raise _Reject("wrong_type", f"published_at is a {type(raw).__name__}, expected an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise _Reject(
            "bad_timestamp", f"published_at {raw[:64]!r} is not ISO 8601; expected e.g. 2024-05-01T13:30:00Z"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _Reject(
            "bad_timestamp", f"published_at {raw[:64]!r} has no time zone; add Z or an offset such as +02:00"
        )
    try:
        published_at = parsed.astimezone(timezone.utc)
    except OverflowError:
        raise _Reject("bad_timestamp", f"published_at {raw[:64]!r} is outside the years 1-9999 once in UTC") from None
    time_window.check(published_at, raw)
    return published_at


def _optional_text(document: dict[str, Any], name: str, limit: int) -> str | None:
    raw = document.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _Reject("wrong_type", f"{name} is a {type(raw).__name__}, expected a string")
    if len(raw) > limit:
        raise _Reject("too_long", f"{name} has {len(raw)} characters, over the limit of {limit}")
    if "\x00" in raw:
        raise _Reject("bad_encoding", f"{name} contains a NUL character, which cannot be stored as text")
    if not _encodable(raw):
        raise _Reject("bad_encoding", f"{name} contains a lone UTF-16 surrogate (e.g. \\ud800), which is not text")
    return raw


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _tickers(document: dict[str, Any]) -> tuple[str, ...] | None:
    raw = document.get("tickers")
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _Reject("wrong_type", f"tickers is a {type(raw).__name__}, expected a list of strings")
    if len(raw) > MAX_TICKERS:
        raise _Reject("too_long", f"tickers has {len(raw)} entries, over the limit of {MAX_TICKERS}")
    tickers: list[str] = []
    for entry in raw:
        if not isinstance(entry, str):
            raise _Reject("wrong_type", f"tickers contains a {type(entry).__name__}, expected strings only")
        ticker = entry.strip().lstrip("$").upper()
        if not ticker or len(ticker) > MAX_TICKER_CHARS or not _TICKER_PATTERN.match(ticker):
            raise _Reject("bad_ticker", f"ticker {entry[:40]!r} is not a symbol such as AAPL or BRK.B")
        if ticker not in tickers:
            tickers.append(ticker)
    return tuple(tickers) or None
