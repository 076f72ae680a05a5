"""The SQL of deploy/grafana/dashboards/finsent.json against the views the migrations create:
the views' columns read from the migration that defines them, and the views and columns a
dashboard query names, for tests/unit/test_grafana_dashboard.py and the integration test that runs
the queries on PostgreSQL."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "finsent.json"
MIGRATIONS = ROOT / "storage" / "migrations" / "versions"
VIEW_SOURCE = "0005_risk_events_and_stories.py"
"""The migration whose functions build the views' current SELECT; 0006 renames entity_timeseries."""
RENAMED = {"entity_timeseries": "entity_series"}

_SQL_WORDS = frozenset("""
select from where and or not in is null as order by group having limit offset asc desc distinct case when then
else end array true false interval between like ilike on join left right inner outer union all any exists cast
""".split())
_STRINGS = re.compile(r"'(?:''|[^'])*'")
_ALIASES = re.compile(r"\bAS\s+(\"[^\"]+\"|[A-Za-z_]\w*)", re.I)
_VARIABLES = re.compile(r"\$\{[^}]*\}|\$(?!__)\w+")
_MACROS = re.compile(r"\$__\w+")
_NAME = re.compile(r"(?<![\w.$])([A-Za-z_]\w*)\b(?!\s*\()")
_RELATIONS = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_]\w*)", re.I)


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"migration_{name[:4]}", MIGRATIONS / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _select_list(create_view: str) -> list[str]:
    body = create_view.split("SELECT", 1)[1].split("\nFROM ", 1)[0]
    items, depth, current = [], 0, ""
    for char in body:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [*items, current]


def _column(item: str) -> str:
    alias = re.search(r"\bAS\s+(\w+)\s*$", item.strip(), re.I)
    return alias.group(1) if alias else item.strip().rsplit(".", 1)[-1]


def view_columns() -> dict[str, frozenset[str]]:
    """{view: columns} as the migrations create them (0005's SELECTs, 0006's rename)."""
    source = _module(VIEW_SOURCE)
    views = {"entity_timeseries": source.entity_timeseries(story_columns=True),
             "recent_alerts": source.recent_alerts(count_model=True)}
    return {RENAMED.get(name, name): frozenset(_column(item) for item in _select_list(sql)) for name, sql in views.items()}


def later_view_definitions() -> list[str]:
    """Migrations after VIEW_SOURCE that create these views again: their columns would be stale here."""
    later = sorted(path for path in MIGRATIONS.glob("[0-9]*.py") if path.name > VIEW_SOURCE)
    return [path.name for path in later
            if re.search(r"CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(?:entity_series|recent_alerts)\b", path.read_text(), re.I)]


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


def panels(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in document["panels"]:
        yield panel
        yield from panel.get("panels", [])


def sql_queries(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, SQL) of every panel target and template variable with raw SQL."""
    for panel in panels(document):
        for target in panel.get("targets", []):
            if "rawSql" in target:
                yield panel["title"], target["rawSql"]
    for variable in document.get("templating", {}).get("list", []):
        if variable.get("datasource", {}).get("type", "").endswith("postgresql-datasource"):
            yield f"variable {variable['name']}", variable["query"]


def relations(sql: str) -> set[str]:
    return set(_RELATIONS.findall(_STRINGS.sub("''", sql)))


def column_names(sql: str) -> set[str]:
    """The bare identifiers a query reads: string literals, Grafana variables, aliases, function
    names and SQL words left out (a macro's argument, such as $__timeFilter(bucket_end), stays)."""
    text = _STRINGS.sub(" ", sql)
    text = _ALIASES.sub(" ", text)
    text = _VARIABLES.sub(" ", text)
    text = _MACROS.sub(" ", text)
    text = _RELATIONS.sub(" ", text)
    return {name for name in _NAME.findall(text) if name.lower() not in _SQL_WORDS}


def expand_macros(sql: str, start: datetime, end: datetime, variables: dict[str, str]) -> str:
    """What Grafana sends PostgreSQL: $__timeFilter(col) as a BETWEEN, ${name} / ${name:sqlstring}
    as the variable's (already quoted where Grafana quotes) value."""
    def time_filter(match: re.Match[str]) -> str:
        return f"{match.group(1)} BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'"

    text = re.sub(r"\$__timeFilter\(([^)]+)\)", time_filter, sql)
    text = re.sub(r"\$\{(\w+)(?::\w+)?\}", lambda match: variables[match.group(1)], text)
    assert "$" not in text, f"an unexpanded Grafana macro or variable in {text}"
    return text
