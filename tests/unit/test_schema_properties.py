"""Validation is total: whatever bytes or JSON values arrive, `parse_news` returns a NewsItem or a
RejectedMessage and never raises (a raise would stop every worker of the group on that offset)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.schema import NewsItem, RejectedMessage, parse_news

# Reproducible in CI (the same examples every run, no example database written into the tree) and
# indifferent to a slow loaded machine: the property, not the timing, is under test.
settings.register_profile("finsent", derandomize=True, database=None, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.load_profile("finsent")

FIELDS = ("id", "published_at", "headline", "body", "source", "url", "lang", "tickers")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
timestamps = st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()) | st.text(max_size=40) | st.sampled_from(
    ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "2026-03-02T14:30:00Z", "1970-01-01T00:00:00Z"]
)
texts = st.text() | st.sampled_from(["\ud800", "a\udfffb", "\x00", "\u202e", "\x1b[2J", ""])
messages = st.fixed_dictionaries(
    {"published_at": timestamps},
    optional={
        "headline": texts | json_values,
        "body": texts | json_values,
        "id": texts | json_values,
        "source": texts,
        "tickers": st.lists(texts, max_size=5) | json_values,
        "url": texts,
        "lang": texts,
        "extra": json_values,
    },
)


def assert_total(value: bytes | None) -> None:
    result = parse_news(value)
    assert isinstance(result, NewsItem | RejectedMessage)
    if isinstance(result, RejectedMessage):
        assert result.kind and result.reason
        result.reason.encode("utf-8")  # goes into a Kafka header
    else:
        result.id.encode("utf-8")
        result.headline.encode("utf-8")


def encode(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


@settings(max_examples=600)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_raise(value: bytes) -> None:
    assert_total(value)


@settings(max_examples=600)
@given(json_values)
def test_arbitrary_json_values_never_raise(document: Any) -> None:
    assert_total(encode(document))


@settings(max_examples=800)
@given(messages)
def test_messages_with_arbitrary_field_values_never_raise(document: dict[str, Any]) -> None:
    assert_total(encode(document))
    assert_total(json.dumps(document).encode("ascii"))  # the same with \u escapes, lone surrogates included


@settings(max_examples=100)
@given(st.sampled_from(FIELDS + ("extra",)), st.integers(min_value=1, max_value=20_000), st.booleans())
def test_integers_of_any_length_in_any_field_never_raise(field: str, digits: int, negative: bool) -> None:
    number = ("-" if negative else "") + "9" * digits
    assert_total(b'{"published_at": "2026-03-02T14:30:00Z", "headline": "x", "' + field.encode() + b'": ' + number.encode() + b"}")
