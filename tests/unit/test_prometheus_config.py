"""deploy/prometheus.yml and deploy/prometheus-rules.yml stay true: they parse, scrape the compose
services' metrics ports, name only series finsent exposes (read from pipeline.metrics' registry), and
pass promtool's config and rules checks and the rules' unit tests (where promtool is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.support.promql import (
    PROMETHEUS_BUILTIN,
    PROMETHEUS_CONFIG,
    PROMETHEUS_RULES,
    PROMETHEUS_RULES_TEST,
    ROOT,
    finsent_series,
    load_yaml,
    recorded,
    rules,
    series_read,
)

COMPOSE_METRICS_PORT = 9108
RECORDING_NAME = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")  # level:metric:operations
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian package prometheus)")


def test_the_metric_helper_reads_the_registry_and_expressions() -> None:
    names = finsent_series()
    assert {"finsent_messages_consumed_total", "finsent_consumer_lag_messages", "finsent_batch_duration_seconds_bucket",
            "finsent_deliveries_failed_total", "finsent_build_info"} <= names
    assert series_read('sum by (channel) (rate(finsent_deliveries_failed_total{channel="x"}[15m])) > 0 and on() up') == {
        "finsent_deliveries_failed_total", "up"}
    assert series_read("histogram_quantile(0.9, sum by (le) (rate(a_bucket[5m]))) / ignoring(x) b:c:d") == {"a_bucket", "b:c:d"}


def test_every_rule_reads_only_finsent_series_or_recorded_ones() -> None:
    known = finsent_series() | recorded() | PROMETHEUS_BUILTIN
    for rule in rules():
        unknown = series_read(rule["expr"]) - known
        assert not unknown, f"{rule.get('record') or rule.get('alert')}: {sorted(unknown)} is not in pipeline/metrics.py's registry"


def test_recording_rules_follow_the_naming_convention_and_cover_the_brief() -> None:
    names = recorded()
    assert all(RECORDING_NAME.match(name) for name in names), sorted(names)
    read = {name: series_read(rule["expr"]) for rule in rules() if (name := rule.get("record"))}
    for metric in ("finsent_articles_scored_total", "finsent_messages_dead_lettered_total",
                   "finsent_consumer_lag_messages", "finsent_deliveries_failed_total"):
        assert any(metric in series for series in read.values()), f"no recording rule over {metric}"


def test_alerts_have_a_severity_and_say_what_happened() -> None:
    alerts = [rule for rule in rules() if "alert" in rule]
    assert {"FinsentConsumerLagHigh", "FinsentDeadLetterShareHigh", "FinsentIngestStalled", "FinsentDeliveriesFailing",
            "FinsentTargetDown"} <= {rule["alert"] for rule in alerts}
    for rule in alerts:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_config_scrapes_the_compose_workers_and_scheduler_and_loads_the_rules() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    compose = load_yaml(ROOT / "docker-compose.yml")["services"]
    scraped: dict[str, int] = {}
    for job in config["scrape_configs"]:
        for discovery in job.get("dns_sd_configs", []):
            scraped.update(dict.fromkeys(discovery["names"], discovery["port"]))
    for name in ("worker", "scheduler"):
        assert scraped.get(name) == COMPOSE_METRICS_PORT, f"{name} is not scraped on its metrics port"
        assert str(COMPOSE_METRICS_PORT) in {str(port) for port in compose[name]["expose"]}
        assert str(compose[name]["environment"]["FINSENT_METRICS_PORT"]) == str(COMPOSE_METRICS_PORT)
    # the rule file path is relative to the config, so it resolves in the repository and in the container
    assert [PROMETHEUS_CONFIG.parent / path for path in config["rule_files"]] == [PROMETHEUS_RULES]
    mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in compose["prometheus"]["volumes"] if ":" in volume}
    config_in_container = next(target for target, source in mounted.items() if source == "./deploy/prometheus.yml")
    rules_in_container = f"{config_in_container.rsplit('/', 1)[0]}/{config['rule_files'][0]}"
    assert mounted.get(rules_in_container) == "./deploy/prometheus-rules.yml", "the rules are not mounted where the config reads them"


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_promtool_accepts_the_config_and_the_rules() -> None:
    for check in (("check", "config", str(PROMETHEUS_CONFIG)), ("check", "rules", str(PROMETHEUS_RULES))):
        result = promtool(*check)
        assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_rules_unit_tests_pass() -> None:
    """Series fed through the rules: stalled intake, a high dead-letter share, a growing backlog, a
    failing channel and a down target fire; a healthy flow and a draining backlog do not."""
    result = promtool("test", "rules", str(PROMETHEUS_RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
