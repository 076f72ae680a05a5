"""Small news data the tests write themselves: valid articles and every kind of malformed message."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

BASE_TIME = datetime(2026, 3, 2, 14, 30, tzinfo=timezone.utc)
TICKERS = ("AAPL", "MSFT", "NVDA", "JPM", "XOM", "TSLA")


def valid_article(index: int) -> dict[str, object]:
    ticker = TICKERS[index % len(TICKERS)]
    article: dict[str, object] = {
        "published_at": (BASE_TIME + timedelta(seconds=7 * index)).isoformat().replace("+00:00", "Z"),
        "headline": f"{ticker} update #{index}: shares move as traders weigh quarterly guidance",
        "source": "test-wire",
    }
    if index % 3 == 0:
        article["id"] = f"test-{index}"
    if index % 3 == 1:
        article["tickers"] = [ticker]
    if index % 5 == 0:
        article["body"] = f"Analysts discussed ${ticker} and the sector outlook. " * 3
    return article


def valid_messages(count: int, start: int = 0) -> list[tuple[bytes | None, bytes]]:
    return [(None, json.dumps(valid_article(i)).encode()) for i in range(start, start + count)]


def malformed_messages(max_message_bytes: int = 1_048_576) -> dict[str, bytes | None]:
    """One message per way of breaking the contract; keys name the expected reject kind."""
    good = {"published_at": "2026-03-02T14:30:00Z", "headline": "fine"}

    def with_(**changes: object) -> bytes:
        return json.dumps({**good, **changes}).encode()

    return {
        "not_json": b"{this is not json",
        "bad_encoding": b'{"published_at": "2026-03-02T14:30:00Z", "headline": "caf\xe9"}',
        "not_object": b'["a", "list"]',
        "empty": b"",
        "missing_field": json.dumps({"headline": "no time"}).encode(),
        "bad_timestamp": with_(published_at="yesterday afternoon"),
        "naive_timestamp": with_(published_at="2026-03-02T14:30:00"),
        "wrong_type": with_(headline=42),
        "empty_text": with_(headline="   ", body=""),
        "tickers_not_list": with_(tickers="AAPL"),
        "bad_ticker": with_(tickers=["not a ticker!"]),
        "oversized": with_(body="x" * (max_message_bytes + 10)),
        "nul_character": with_(headline="bad\u0000byte"),
        "id_wrong_type": with_(id=12345),
        "scalar_json": b"42",
        "tombstone": None,
    }
