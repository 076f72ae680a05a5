"""Who an article is about: producer tickers, else cashtags and whole-word names; always the market, once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumers.schema import NewsItem, parse_news
from pipeline.entities import EntityMatcher, KnownEntity, load_entities
from pipeline.errors import UserError
from storage.writes import EntityMention

MARKET = "MARKET"


def news(headline: str, body: str = "", tickers: list[str] | None = None) -> NewsItem:
    document: dict[str, object] = {"published_at": "2024-05-01T13:30:00Z", "headline": headline, "body": body}
    if tickers is not None:
        document["tickers"] = tickers
    item = parse_news(json.dumps(document).encode("utf-8"))
    assert isinstance(item, NewsItem), item
    return item


@pytest.fixture(scope="module")
def matcher() -> EntityMatcher:
    return EntityMatcher(load_entities(None), MARKET)


def found(matcher: EntityMatcher, item: NewsItem) -> dict[str, str]:
    mentions = matcher.mentions(item)
    entities = [mention.entity for mention in mentions]
    assert len(entities) == len(set(entities)), f"duplicate mentions: {mentions}"
    assert [m for m in mentions if m.entity == MARKET] == [EntityMention(MARKET, "market")]
    return {mention.entity: mention.matched_by for mention in mentions}


def test_producer_tickers_used_as_is_and_text_not_scanned(matcher: EntityMatcher) -> None:
    item = news("Apple and $TSLA rally; Microsoft flat", tickers=["nvda", "$AMD", "NVDA"])
    assert found(matcher, item) == {"NVDA": "tickers", "AMD": "tickers", MARKET: "market"}


def test_empty_producer_tickers_fall_back_to_text(matcher: EntityMatcher) -> None:
    assert found(matcher, news("Apple rallies", tickers=[])) == {"AAPL": "name", MARKET: "market"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$SIVB halted after run on deposits", {"SIVB"}),
        ("Buffett's $BRK.B at a record", {"BRK.B"}),
        ("$aapl and $MSFT, then $AAPL again.", {"AAPL", "MSFT"}),
        ("($TSLA) jumps", {"TSLA"}),
    ],
)
def test_cashtags_found_even_when_not_listed(matcher: EntityMatcher, text: str, expected: set[str]) -> None:
    result = found(matcher, news(text))
    assert {entity for entity, how in result.items() if how == "cashtag"} == expected


@pytest.mark.parametrize("text", ["Shares fell $5 to close", "Deal worth US$100 million", "Costs $$ and a$B", "price: $1.5bn"])
def test_money_amounts_are_not_cashtags(matcher: EntityMatcher, text: str) -> None:
    assert found(matcher, news(text)) == {MARKET: "market"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Apple unveils new chips", {"AAPL": "name"}),
        ("iPhone maker shares rise", {"AAPL": "name"}),
        ("Google and JP Morgan in talks", {"GOOGL": "name", "JPM": "name"}),
        ("Berkshire Hathaway buys more", {"BRK.B": "name"}),
        ("Apple Inc and Apple both", {"AAPL": "name"}),
        ("$AAPL: Apple beats", {"AAPL": "cashtag"}),
    ],
)
def test_names_and_aliases_matched(matcher: EntityMatcher, text: str, expected: dict[str, str]) -> None:
    assert found(matcher, news(text)) == {**expected, MARKET: "market"}


@pytest.mark.parametrize("text", ["apple pie recipes", "Pineapple prices soar", "APPLE growers", "Applesauce sales",
                                  "BigApple fest", "Fordham University"])
def test_names_are_case_sensitive_whole_words(matcher: EntityMatcher, text: str) -> None:
    assert found(matcher, news(text)) == {MARKET: "market"}


def test_body_is_scanned_too(matcher: EntityMatcher) -> None:
    assert found(matcher, news("Markets open", body="Tesla deliveries beat")) == {"TSLA": "name", MARKET: "market"}


def test_market_entity_is_configurable() -> None:
    mentions = EntityMatcher([], "SPX").mentions(news("Nothing specific"))
    assert mentions == (EntityMention("SPX", "market"),)


def test_shipped_list_loads() -> None:
    entities = load_entities(None)
    assert len(entities) > 20
    by_ticker = {entity.ticker: entity for entity in entities}
    assert by_ticker["AAPL"] == KnownEntity("AAPL", "Apple", ("Apple Inc", "iPhone maker"))
    assert len(by_ticker) == len(entities), "duplicate tickers in the shipped list"


def test_custom_csv_with_aliases(tmp_path: Path) -> None:
    path = tmp_path / "entities.csv"
    path.write_text("ticker,name,aliases\n$acme,Acme Corp,Acme| Road Runner Co |\nZZ,Zeta,\n", encoding="utf-8")
    entities = load_entities(path)
    assert entities == [KnownEntity("ACME", "Acme Corp", ("Acme", "Road Runner Co")), KnownEntity("ZZ", "Zeta", ())]
    matcher = EntityMatcher(entities, MARKET)
    assert found(matcher, news("Road Runner Co sues; Zeta silent; Apple too")) == {"ACME": "name", "ZZ": "name", MARKET: "market"}


def test_csv_without_header_columns_rejected(tmp_path: Path) -> None:
    path = tmp_path / "entities.csv"
    path.write_text("symbol,company\nAAPL,Apple\n", encoding="utf-8")
    with pytest.raises(UserError, match="header") as raised:
        load_entities(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ("ticker,name,aliases\nAAPL,Apple,\nNOT A TICKER,Bad,\n", 3),
        ("ticker,name,aliases\n,Nameless,\n", 2),
        ("ticker,name,aliases\nAAPL,Apple,\n\nMSFT,Microsoft,\nbad!,Bad,\n", 5),
    ],
    ids=["spaces", "empty", "after-blank-line"],
)
def test_csv_with_invalid_ticker_names_file_and_line(tmp_path: Path, content: str, line: int) -> None:
    path = tmp_path / "entities.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError) as raised:
        load_entities(path)
    assert str(path) in str(raised.value)
    assert f"line {line}:" in str(raised.value)


def test_missing_file_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(UserError, match="not found") as raised:
        load_entities(missing)
    assert str(missing) in str(raised.value)


def test_csv_saved_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "entities.csv"
    path.write_text("ticker,name,aliases\nACME,Acme Corp,\n", encoding="utf-8-sig")
    assert load_entities(path) == [KnownEntity("ACME", "Acme Corp", ())]
