"""What the monitoring files may name: finsent's metric series (from its own registry, not a grep) and
the series a PromQL expression reads, for tests/unit/test_prometheus_config.py and
test_grafana_dashboard.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus.yml"
PROMETHEUS_RULES = DEPLOY / "prometheus-rules.yml"
PROMETHEUS_RULES_TEST = DEPLOY / "prometheus-rules.test.yml"
PROMETHEUS_BUILTIN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
"""Series Prometheus writes for every target itself."""

_KEYWORDS = frozenset({"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                       "bool", "offset", "inf", "nan"})
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTORS = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_NAME = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("", "_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",)}


def finsent_series() -> frozenset[str]:
    """Every series name a worker and a scheduler can expose, from the metric families of their
    registry (a labelled family has no sample before its first label set, so not from samples)."""
    metrics = Metrics()
    _ = metrics.worker, metrics.scheduler  # the groups register on first use
    return frozenset(family.name + suffix for family in metrics.registry.collect() for suffix in _SUFFIXES[family.type])


def series_read(expression: str) -> set[str]:
    """The metric and recording-rule names an expression selects: strings, label matchers, ranges
    and grouping clauses left out, function names (followed by a parenthesis) and keywords too."""
    text = _STRINGS.sub(" ", expression)
    text = _GROUPING.sub(" ", text)
    text = _SELECTORS.sub(" ", text)
    return {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(PROMETHEUS_RULES)["groups"] for rule in group["rules"]]


def recorded() -> frozenset[str]:
    return frozenset(rule["record"] for rule in rules() if "record" in rule)
