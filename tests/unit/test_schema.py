"""The news message contract: bytes -> NewsItem, or a RejectedMessage whose kind and reason name the problem."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from consumers.schema import MAX_HEADLINE_CHARS, MAX_TICKERS, NewsItem, RejectedMessage, TimeWindow, derive_id, parse_news

PUBLISHED = "2024-05-01T13:30:00Z"


def encode(document: Any) -> bytes:
    return json.dumps(document).encode("utf-8")


def parsed(document: dict[str, Any]) -> NewsItem:
    result = parse_news(encode(document))
    assert isinstance(result, NewsItem), result
    return result


def test_valid_message_with_all_fields() -> None:
    item = parsed(
        {
            "id": " art-1 ",
            "published_at": "2024-05-01T15:30:00+02:00",
            "headline": "  Apple beats estimates ",
            "body": "Shares rose.\n",
            "source": "wire",
            "url": "https://example.com/a",
            "lang": "en",
            "tickers": ["AAPL"],
        }
    )
    assert item == NewsItem(
        id="art-1",
        published_at=datetime(2024, 5, 1, 13, 30, tzinfo=timezone.utc),
        headline="Apple beats estimates",
        body="Shares rose.",
        source="wire",
        url="https://example.com/a",
        lang="en",
        tickers=("AAPL",),
    )
    assert item.id_derived is False
    assert item.text == "Apple beats estimates\nShares rose."


@pytest.mark.parametrize("published_at", ["2024-05-01T13:30:00Z", "2024-05-01T13:30:00+00:00", "2024-05-01T15:30:00+02:00",
                                          "2024-05-01T09:30:00.000-04:00"])
def test_published_at_normalised_to_utc(published_at: str) -> None:
    item = parsed({"published_at": published_at, "headline": "h"})
    assert item.published_at.tzinfo is not None
    assert item.published_at.utcoffset() == timedelta(0)
    assert item.published_at == datetime(2024, 5, 1, 13, 30, tzinfo=timezone.utc)


def test_derived_id_is_stable_across_offset_notations() -> None:
    notations = ["2024-05-01T13:30:00Z", "2024-05-01T13:30:00+00:00", "2024-05-01T15:30:00+02:00"]
    items = [parsed({"source": "wire", "published_at": at, "headline": "Fed holds rates"}) for at in notations]
    assert all(item.id_derived for item in items)
    assert len({item.id for item in items}) == 1
    instant = datetime(2024, 5, 1, 13, 30, tzinfo=timezone.utc)
    assert items[0].id == derive_id("wire", instant, "Fed holds rates")
    assert len(items[0].id) == 64
    plus_two = timezone(timedelta(hours=2))
    assert derive_id("wire", instant.astimezone(plus_two), "Fed holds rates") == items[0].id


@pytest.mark.parametrize(
    "change",
    [{"headline": "Fed cuts rates"}, {"source": "other"}, {"published_at": "2024-05-01T13:30:01Z"}],
    ids=["headline", "source", "published_at"],
)
def test_derived_id_differs_when_identity_fields_differ(change: dict[str, str]) -> None:
    base = {"source": "wire", "published_at": PUBLISHED, "headline": "Fed holds rates"}
    assert parsed(base).id != parsed({**base, **change}).id


@pytest.mark.parametrize("given_id", [None, "", "   "])
def test_missing_or_blank_id_is_derived(given_id: str | None) -> None:
    item = parsed({"id": given_id, "published_at": PUBLISHED, "headline": "h"})
    assert item.id_derived
    assert item.id == derive_id(None, datetime(2024, 5, 1, 13, 30, tzinfo=timezone.utc), "h")


def test_headline_only_and_body_only_are_valid() -> None:
    headline_only = parsed({"published_at": PUBLISHED, "headline": "Only a headline"})
    body_only = parsed({"published_at": PUBLISHED, "body": "Only a body"})
    assert (headline_only.headline, headline_only.body) == ("Only a headline", "")
    assert (body_only.headline, body_only.body) == ("", "Only a body")
    assert body_only.text == "Only a body"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["aapl", "$MSFT", " brk.b "], ("AAPL", "MSFT", "BRK.B")),
        (["AAPL", "$aapl", "aapl", "TSLA"], ("AAPL", "TSLA")),
        ([], None),
        (None, None),
    ],
)
def test_tickers_normalised(given: list[str] | None, expected: tuple[str, ...] | None) -> None:
    assert parsed({"published_at": PUBLISHED, "headline": "h", "tickers": given}).tickers == expected


def test_unknown_fields_ignored() -> None:
    item = parsed({"published_at": PUBLISHED, "headline": "h", "sentiment_hint": 0.4, "extra": {"nested": [1]}})
    assert item == parsed({"published_at": PUBLISHED, "headline": "h"})


def field_error(**overrides: Any) -> bytes:
    return encode({"published_at": PUBLISHED, "headline": "h", **overrides})


REJECTIONS: list[tuple[str, bytes | None, str, str]] = [
    ("tombstone", None, "empty", "value"),
    ("empty bytes", b"", "empty", "empty"),
    ("not utf-8", b'{"headline": "\xff\xfe"}', "bad_encoding", "UTF-8"),
    ("not json", b"{headline: oops", "not_json", "JSON"),
    ("json array", b"[1, 2]", "not_object", "list"),
    ("json number", b"42", "not_object", "int"),
    ("json string", b'"hello"', "not_object", "str"),
    ("published_at missing", encode({"headline": "h"}), "missing_field", "published_at"),
    ("published_at null", encode({"headline": "h", "published_at": None}), "missing_field", "published_at"),
    ("published_at number", field_error(published_at=1714570200), "wrong_type", "published_at"),
    ("published_at unparsable", field_error(published_at="yesterday at noon"), "bad_timestamp", "published_at"),
    ("published_at naive", field_error(published_at="2024-05-01T13:30:00"), "bad_timestamp", "published_at"),
    ("headline number", field_error(headline=7), "wrong_type", "headline"),
    ("body list", field_error(body=["a"]), "wrong_type", "body"),
    ("source number", field_error(source=1), "wrong_type", "source"),
    ("both empty", field_error(headline="", body=""), "empty_text", "headline"),
    ("both whitespace", field_error(headline="  \n", body="\t"), "empty_text", "body"),
    ("both missing", encode({"published_at": PUBLISHED}), "empty_text", "headline"),
    ("tickers string", field_error(tickers="AAPL"), "wrong_type", "tickers"),
    ("ticker entry number", field_error(tickers=["AAPL", 5]), "wrong_type", "tickers"),
    ("bad ticker symbol", field_error(tickers=["AA PL"]), "bad_ticker", "AA PL"),
    ("empty ticker", field_error(tickers=["$"]), "bad_ticker", "ticker"),
    ("too many tickers", field_error(tickers=[f"T{i}" for i in range(MAX_TICKERS + 1)]), "too_long", "tickers"),
    ("headline too long", field_error(headline="x" * (MAX_HEADLINE_CHARS + 1)), "too_long", "headline"),
    ("NUL in headline", field_error(headline="a\x00b"), "bad_encoding", "headline"),
    ("NUL in body", field_error(body="a\x00b"), "bad_encoding", "body"),
    ("id number", field_error(id=12), "wrong_type", "id"),
    ("integer over the int-parsing limit", b'{"published_at": "2024-05-01T13:30:00Z", "headline": "x", "n": ' + b"9" * 5000 + b"}",
     "not_json", "digits"),
    ("lone surrogate, no id", b'{"published_at": "2024-05-01T13:30:00Z", "headline": "a\\ud800b"}', "bad_encoding", "surrogate"),
    ("lone surrogate in the body", field_error(body="\udfff"), "bad_encoding", "body"),
    ("year 1 once in UTC", field_error(published_at="0001-01-01T00:30:00+01:00"), "bad_timestamp", "outside"),
    ("year 9999 once in UTC", field_error(published_at="9999-12-31T23:30:00-01:00"), "bad_timestamp", "outside"),
    ("far future", field_error(published_at="9999-01-01T00:00:00Z"), "bad_timestamp", "ahead of the wall clock"),
    ("placeholder epoch date", field_error(published_at="1970-01-01T00:00:00Z"), "bad_timestamp", "placeholder"),
    ("duplicate key", b'{"published_at": "2024-05-01T13:30:00Z", "headline": "a", "headline": "b"}', "duplicate_key", "headline"),
    ("NaN literal", b'{"published_at": "2024-05-01T13:30:00Z", "headline": "a", "x": NaN}', "not_json", "NaN"),
    ("Infinity literal", b'{"published_at": "2024-05-01T13:30:00Z", "headline": "a", "x": -Infinity}', "not_json", "Infinity"),
    ("deep nesting", b'{"published_at": "2024-05-01T13:30:00Z", "headline": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "not_json", "deeply"),
]


@pytest.mark.parametrize(("value", "kind", "named"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS])
def test_rejections_have_kind_and_reason_naming_the_problem(value: bytes | None, kind: str, named: str) -> None:
    result = parse_news(value)
    assert isinstance(result, RejectedMessage), result
    assert result.kind == kind
    assert named in result.reason


def test_oversized_rejected_against_configured_limit() -> None:
    value = field_error(headline="x" * 100)
    result = parse_news(value, max_message_bytes=64)
    assert result == RejectedMessage("oversized", f"message is {len(value)} bytes, over the limit of 64")
    assert isinstance(parse_news(value, max_message_bytes=len(value)), NewsItem)


def test_a_utf8_byte_order_mark_is_ignored() -> None:
    assert parse_news(b"\xef\xbb\xbf" + field_error()) == parse_news(field_error())


def test_the_time_window_follows_the_clock_and_the_settings() -> None:
    now = datetime(2026, 3, 2, 14, 30, tzinfo=timezone.utc)
    window = TimeWindow(timedelta(minutes=5), datetime(2000, 1, 1, tzinfo=timezone.utc), clock=lambda: now)
    assert isinstance(parse_news(field_error(published_at="2026-03-02T14:34:59Z"), time_window=window), NewsItem)
    late = parse_news(field_error(published_at="2026-03-02T14:35:01Z"), time_window=window)
    assert isinstance(late, RejectedMessage) and late.kind == "bad_timestamp" and "FINSENT_MAX_FUTURE_SKEW" in late.reason
    early = parse_news(field_error(published_at="1999-12-31T23:59:59Z"), time_window=window)
    assert isinstance(early, RejectedMessage) and "FINSENT_EARLIEST_PUBLISHED_AT" in early.reason
    assert isinstance(parse_news(field_error(published_at="2000-01-01T00:00:00Z"), time_window=window), NewsItem)


def test_derived_id_ignores_surrounding_whitespace_of_the_headline() -> None:
    padded = parsed({"published_at": PUBLISHED, "headline": "  Fed holds rates  ", "source": "wire"})
    plain = parsed({"published_at": PUBLISHED, "headline": "Fed holds rates", "source": "wire"})
    assert padded.id == plain.id
