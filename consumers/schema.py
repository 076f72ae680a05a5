"""The news message contract: bytes from the topic -> a typed `NewsItem`, or a `RejectedMessage` reason.

Rules (see DESIGN.md): UTF-8 JSON object; `published_at` ISO 8601 with a zone; headline or body
non-empty; optional id (else sha256 of source + published_at + headline), source, url, lang,
tickers. Unknown fields are ignored so producers can add fields without breaking workers.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

MAX_ID_CHARS = 256
MAX_HEADLINE_CHARS = 4_000
MAX_BODY_CHARS = 200_000
MAX_SHORT_FIELD_CHARS = {"source": 256, "url": 2_048, "lang": 16}
MAX_TICKERS = 64
MAX_TICKER_CHARS = 32
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576

_TICKER_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9.\-:/^=_]*$")


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
    """Stable id for messages without one; the same article replayed or re-sent gets the same id."""
    canonical_time = published_at.astimezone(timezone.utc).isoformat()
    material = "\x1f".join((source or "", canonical_time, headline))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def parse_news(value: bytes | None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> NewsItem | RejectedMessage:
    """Validate one message value. Never raises for bad input: returns the rejection instead."""
    try:
        return _parse(value, max_message_bytes)
    except _Reject as rejected:
        return rejected.rejection


def _parse(value: bytes | None, max_message_bytes: int) -> NewsItem:
    if value is None:
        raise _Reject("empty", "message has no value (tombstone); expected a JSON object")
    if len(value) == 0:
        raise _Reject("empty", "message value is empty; expected a JSON object")
    if len(value) > max_message_bytes:
        raise _Reject("oversized", f"message is {len(value)} bytes, over the limit of {max_message_bytes}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Reject("bad_encoding", f"message is not valid UTF-8: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise _Reject("not_json", f"message is not JSON: {error}") from None
    except RecursionError:
        raise _Reject("not_json", "message JSON is nested too deeply") from None
    if not isinstance(document, dict):
        raise _Reject("not_object", f"message is a JSON {type(document).__name__}, expected an object")

    published_at = _published_at(document)
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


def _published_at(document: dict[str, Any]) -> datetime:
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
    return parsed.astimezone(timezone.utc)


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
    return raw


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
