"""deploy/grafana stays true: the dashboard parses, each panel's data source is provisioned, its SQL
names only views and columns the migrations create, its PromQL only finsent's metrics and the
recording rules, and docker-compose.yml mounts every provisioning file where Grafana reads it."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.dashboard_sql import (
    DASHBOARD,
    column_names,
    dashboard,
    later_view_definitions,
    panels,
    relations,
    sql_queries,
    view_columns,
)
from tests.support.promql import PROMETHEUS_BUILTIN, ROOT, finsent_series, recorded, series_read

GRAFANA = ROOT / "deploy" / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"


def compose_service(name: str) -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"][name]


def provisioned() -> dict[str, str]:
    """{uid: type} of the provisioned data sources."""
    sources = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    return {source["uid"]: source["type"] for source in sources}


def test_the_sql_helpers_see_views_columns_and_macro_arguments() -> None:
    columns = view_columns()
    assert {"emotion_index", "negative_share", "bucket_end", "entity", "width"} <= columns["entity_series"]
    assert {"fired_at", "resolved_at", "last_seen_at", "severity", "rule", "state"} <= columns["recent_alerts"]
    assert "evidence" in columns["recent_alerts"] and "a" not in columns["recent_alerts"]
    sql = "SELECT bucket_end AS \"time\", sum(x) AS y FROM entity_series WHERE w = '${width}' AND $__timeFilter(bucket_end)"
    assert column_names(sql) == {"bucket_end", "x", "w"}
    assert relations(sql) == {"entity_series"}
    assert not later_view_definitions(), "a later migration re-creates a view: read its columns in tests/support/dashboard_sql.py"


def test_the_dashboard_parses_and_every_panel_uses_a_provisioned_data_source() -> None:
    document = dashboard()
    assert document["uid"] == "finsent"
    sources = provisioned()
    assert set(sources.values()) == {"prometheus", "grafana-postgresql-datasource"}
    for panel in panels(document):
        if panel["type"] == "row":
            continue
        for holder in (panel, *panel["targets"]):
            source = holder["datasource"]
            assert sources.get(source["uid"]) == source["type"], f"{panel['title']}: data source {source} is not provisioned"
    for variable in document["templating"]["list"]:
        assert sources.get(variable["datasource"]["uid"]) == variable["datasource"]["type"], variable["name"]


def test_the_dashboard_has_the_pipeline_and_sentiment_panels() -> None:
    titles = {panel["title"] for panel in panels(dashboard())}
    assert {"Consumer lag", "Throughput", "Dead letters", "Delivery failures", "Emotion index per entity",
            "Negative share per entity", "Alerts"} <= titles


def test_sql_names_only_views_and_their_columns() -> None:
    columns = view_columns()
    queries = list(sql_queries(dashboard()))
    assert len(queries) >= 5
    for where, sql in queries:
        read = relations(sql)
        assert read and read <= set(columns), f"{where}: reads {sorted(read)}; the dashboard reads only the views {sorted(columns)}"
        known = frozenset().union(*(columns[view] for view in read))
        unknown = column_names(sql) - known
        assert not unknown, f"{where}: {sorted(unknown)} is no column of {sorted(read)} (storage/migrations)"


def test_the_curves_read_the_emotion_index_and_negative_share() -> None:
    by_title = dict(sql_queries(dashboard()))
    assert "emotion_index" in column_names(by_title["Emotion index per entity"])
    assert "negative_share" in column_names(by_title["Negative share per entity"])
    assert relations(by_title["Alerts"]) == {"recent_alerts"}


def test_promql_uses_finsent_metrics_or_recording_rules() -> None:
    known = finsent_series() | recorded() | PROMETHEUS_BUILTIN
    expressions = [(panel["title"], target["expr"]) for panel in panels(dashboard()) for target in panel.get("targets", [])
                   if "expr" in target]
    assert len(expressions) >= 8
    for title, expression in expressions:
        read = series_read(expression)
        assert read and not read - known, f"{title}: {sorted(read - known)} is neither a finsent metric nor a recording rule"


def mounts(service: str) -> dict[str, str]:
    """{path in the container: path in the repository} of a service's bind mounts."""
    pairs = (volume.split(":") for volume in compose_service(service)["volumes"])
    return {parts[1]: parts[0] for parts in pairs if parts[0].startswith("./")}


def container_path(local: Path, bind: dict[str, str]) -> str | None:
    """Where a repository file appears in the container: mounted itself or inside a mounted folder."""
    relative = "./" + local.relative_to(ROOT).as_posix()
    for target, source in bind.items():
        if relative == source:
            return target
        if relative.startswith(source.rstrip("/") + "/"):
            return target + relative[len(source.rstrip("/")):]
    return None


def test_compose_mounts_each_provisioning_file_where_grafana_reads_it() -> None:
    bind = mounts("grafana")
    for local, folder in ((DATASOURCES, "datasources"), (DASHBOARD_PROVIDERS, "dashboards")):
        path = container_path(local, bind)
        assert path is not None and path.startswith(f"{GRAFANA_PROVISIONING}/{folder}/"), f"{local} is not mounted for Grafana"
    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text(encoding="utf-8"))["providers"]
    dashboard_in_container = container_path(DASHBOARD, bind)
    assert dashboard_in_container is not None, "the dashboard JSON is not mounted"
    assert any(dashboard_in_container.startswith(provider["options"]["path"].rstrip("/") + "/") for provider in providers)
    assert all(mode.endswith(":ro") for mode in compose_service("grafana")["volumes"] if mode.startswith("./"))


def test_grafana_and_prometheus_run_pinned_images_with_no_password_in_the_file() -> None:
    prometheus, grafana = compose_service("prometheus"), compose_service("grafana")
    assert prometheus["image"].startswith("prom/prometheus:v3.")
    assert grafana["image"].split(":")[0] == "grafana/grafana-oss" and grafana["image"].split(":")[1][0].isdigit()
    password = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password == "${GRAFANA_ADMIN_PASSWORD:-}", "the admin password comes from GRAFANA_ADMIN_PASSWORD only, no default"
    assert "GF_SECURITY_ADMIN_PASSWORD" in " ".join(grafana["entrypoint"]), "Grafana must refuse to start without a password"
    sources = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    postgres = next(source for source in sources if source["type"] == "grafana-postgresql-datasource")
    assert postgres["secureJsonData"]["password"] == "$POSTGRES_PASSWORD"
    assert "POSTGRES_PASSWORD" in grafana["environment"]
    for service in (prometheus, grafana):
        assert service["profiles"] == ["monitoring"], "monitoring starts only when asked for"
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), "the UIs stay on loopback"
