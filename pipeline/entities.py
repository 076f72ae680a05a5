"""Who an article is about: the producer's tickers, else $CASHTAGs and known names; always the market.

The entity list is a CSV of `ticker,name,aliases` (aliases separated by `|`). Names match as whole
words, case-sensitively ("Apple" the company, not "apple pie"). Cashtags of symbols not in the list
still count: the stories that matter most are often about an entity nobody listed.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from consumers.schema import NewsItem
from pipeline.errors import UserError
from storage.writes import EntityMention

DEFAULT_ENTITIES_RESOURCE = "data/entities.csv"
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)(?![\w])")
_TICKER = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,15}$")


@dataclass(frozen=True)
class KnownEntity:
    ticker: str
    name: str
    aliases: tuple[str, ...]


class EntityMatcher:
    def __init__(self, entities: Iterable[KnownEntity], market_entity: str) -> None:
        self.entities = tuple(entities)
        self.market_entity = market_entity
        names: dict[str, str] = {}
        for entity in self.entities:
            for name in (entity.name, *entity.aliases):
                if name:
                    names.setdefault(name, entity.ticker)
        self._ticker_of_name = names
        self._names_pattern = (
            re.compile(r"(?<!\w)(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")(?!\w)")
            if names
            else None
        )

    def mentions(self, item: NewsItem) -> tuple[EntityMention, ...]:
        found: dict[str, EntityMention] = {}
        if item.tickers is not None:
            for ticker in item.tickers:
                found.setdefault(ticker, EntityMention(ticker, "tickers"))
        else:
            text = item.text
            for match in _CASHTAG.finditer(text):
                ticker = match.group(1).upper()
                found.setdefault(ticker, EntityMention(ticker, "cashtag"))
            if self._names_pattern is not None:
                for match in self._names_pattern.finditer(text):
                    ticker = self._ticker_of_name[match.group(1)]
                    found.setdefault(ticker, EntityMention(ticker, "name"))
        found.setdefault(self.market_entity, EntityMention(self.market_entity, "market"))
        return tuple(found.values())


def load_entities(path: Path | None) -> list[KnownEntity]:
    """Read the entity CSV (the shipped default when `path` is None). Bad rows name file, line and fix."""
    if path is None:
        text = resources.files("pipeline").joinpath(DEFAULT_ENTITIES_RESOURCE).read_text(encoding="utf-8")
        origin = "shipped entity list"
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise UserError(f"entity list {path} not found: fix FINSENT_ENTITIES_FILE or unset it") from None
        except UnicodeDecodeError:
            raise UserError(f"entity list {path} is not UTF-8 text: save it as UTF-8 CSV") from None
        origin = str(path)
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or not {"ticker", "name"} <= set(reader.fieldnames):
        raise UserError(f"{origin}: expected a CSV header with columns ticker,name,aliases")
    entities: list[KnownEntity] = []
    for row in reader:
        line_number = reader.line_num
        ticker = (row.get("ticker") or "").strip().lstrip("$").upper()
        if not _TICKER.match(ticker):
            raise UserError(f"{origin} line {line_number}: ticker {row.get('ticker')!r} is not a symbol such as AAPL")
        aliases = tuple(alias.strip() for alias in (row.get("aliases") or "").split("|") if alias.strip())
        entities.append(KnownEntity(ticker, (row.get("name") or "").strip(), aliases))
    return entities


def entity_name(text: str, market_entity: str) -> str:
    """An entity (or silence glob) as stored, as every command and the API read one: tickers are upper
    case, so `pfe` is PFE everywhere; the market entity keeps its configured spelling (FINSENT_MARKET_ENTITY)."""
    entity = text.strip().upper()
    return market_entity if entity == market_entity.upper() else entity
