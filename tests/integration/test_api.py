"""The HTTP API on a real PostgreSQL: every endpoint with the right token, the 401s and 403s, the
404s, pages, filled series, ack and silences; and `finsent serve` as a user starts it (refused
off loopback without tokens, serving /healthz on 127.0.0.1). The history and its alert:
tests/support/api_history.py."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from pipeline.api.app import create_app
from pipeline.config import Settings
from tests.support.alert_history import T0, bucket
from tests.support.api_history import BUCKETS, ENTITIES, READ, READ_TOKEN, TOKENS, WRITE, WRITE_TOKEN, seed
from tests.support.broker_io import wait_until
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

@pytest.fixture
def client(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    seed(engine, database_url, monkeypatch)
    settings = Settings.load({"FINSENT_DATABASE_URL": database_url, "FINSENT_API_TOKENS": TOKENS})
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def only_alert(client: TestClient) -> dict:
    listed = client.get("/api/v1/alerts", headers=READ)
    assert listed.status_code == 200, listed.text
    assert listed.json()["total"] == 1, listed.json()
    return listed.json()["items"][0]


ZULU = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


# --- every endpoint with a token of the right scope ---------------------------------------------


def test_healthz_needs_no_token(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}


def test_entities_most_active_and_most_negative(client: TestClient) -> None:
    active = client.get("/api/v1/entities", headers=READ)
    assert active.status_code == 200, active.text
    body = active.json()
    assert (body["limit"], body["offset"], body["total"]) == (50, 0, 4)
    names = [item["entity"] for item in body["items"]]
    assert names[0] == "MARKET" and set(names) == {"MARKET", *ENTITIES}
    counts = [item["articles"] for item in body["items"]]
    assert counts == sorted(counts, reverse=True)
    pfe = next(item for item in body["items"] if item["entity"] == "PFE")
    assert isinstance(pfe["emotion_index"], float) and ZULU.match(pfe["last_published_at"])
    assert 0 < pfe["negative_share"] < 1 and pfe["mean_sentiment"] is not None

    negative = client.get("/api/v1/entities", params={"order": "negative"}, headers=READ).json()["items"]
    shares = [item["negative_share"] for item in negative]
    assert shares == sorted(shares, reverse=True)
    assert negative[0]["entity"] == "PFE", "the burst makes PFE the most negative"


def test_entities_window_and_pages(client: TestClient) -> None:
    page = client.get("/api/v1/entities", params={"limit": 2, "offset": 1}, headers=READ).json()
    everything = client.get("/api/v1/entities", headers=READ).json()
    assert [item["entity"] for item in page["items"]] == [item["entity"] for item in everything["items"][1:3]]
    assert (page["limit"], page["offset"], page["total"]) == (2, 1, 4)
    # Articles published before the burst only: PFE had no negative spike then.
    early = client.get("/api/v1/entities", params={"since": T0.isoformat(), "until": bucket(90).isoformat()}, headers=READ).json()
    late = client.get("/api/v1/entities", params={"since": bucket(99).isoformat()}, headers=READ).json()
    pfe_early = next(item for item in early["items"] if item["entity"] == "PFE")
    pfe_late = next(item for item in late["items"] if item["entity"] == "PFE")
    assert pfe_late["negative_share"] > pfe_early["negative_share"]
    empty = client.get("/api/v1/entities", params={"since": "2030-01-01"}, headers=READ).json()
    assert empty["items"] == [] and empty["total"] == 0


def test_series_stored_and_filled(client: TestClient) -> None:
    window = {"since": bucket(96).isoformat(), "until": bucket(108).isoformat()}
    stored = client.get("/api/v1/entities/PFE/series", params=window, headers=READ)
    assert stored.status_code == 200, stored.text
    body = stored.json()
    assert body["entity"] == "PFE" and body["width_seconds"] == 300
    assert all(item["article_count"] > 0 for item in body["items"])
    starts = [item["bucket_start"] for item in body["items"]]
    assert starts == sorted(starts) and all(ZULU.match(start) for start in starts)
    burst = next(item for item in body["items"] if item["bucket_start"].startswith(bucket(100).strftime("%Y-%m-%dT%H:%M")))
    assert burst["article_count"] >= 10 and burst["negative_share"] > 0.5

    filled = client.get("/api/v1/entities/pfe/series", params={**window, "fill": "true"}, headers=READ).json()["items"]
    assert len(filled) == 12, "one item per 5m bucket of the hour"
    empty = [item for item in filled if item["article_count"] == 0]
    assert empty, "PFE's steady news leaves buckets without articles"
    for item in empty:
        assert item["mean_sentiment"] is None and item["negative_share"] is None and item["mean_p_negative"] is None
        previous = filled[filled.index(item) - 1]
        assert item["emotion_index"] == pytest.approx(previous["emotion_index"]), "the index carries across an empty bucket"
    assert {item["bucket_start"] for item in body["items"]} <= {item["bucket_start"] for item in filled}


def test_series_default_window_is_two_days_up_to_the_newest_article(client: TestClient) -> None:
    items = client.get("/api/v1/entities/XOM/series", params={"fill": "true"}, headers=READ).json()["items"]
    assert len(items) == 2 * 24 * 12
    newest = datetime.fromisoformat(items[-1]["bucket_start"])
    assert newest == bucket(BUCKETS - 1), "the last bucket holds the newest article"
    hourly = client.get("/api/v1/entities/XOM/series", params={"width": "1h", "fill": "true"}, headers=READ).json()
    assert hourly["width_seconds"] == 3600 and len(hourly["items"]) == 48


def test_articles_newest_first_with_scores_and_entities(client: TestClient) -> None:
    response = client.get("/api/v1/articles", params={"entity": "PFE", "limit": 5}, headers=READ)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["limit"] == 5 and len(body["items"]) == 5 and body["total"] > 10
    times = [item["published_at"] for item in body["items"]]
    assert times == sorted(times, reverse=True)
    first = body["items"][0]
    assert set(first["entities"]) == {"PFE", "MARKET"} and first["model_version"] == "test-model"
    assert first["p_negative"] + first["p_neutral"] + first["p_positive"] == pytest.approx(1, abs=1e-5)
    assert first["sentiment"] == pytest.approx(first["p_positive"] - first["p_negative"])
    burst = client.get("/api/v1/articles", params={"entity": "PFE", "since": bucket(100).isoformat(),
                                                   "until": bucket(101).isoformat()}, headers=READ).json()
    assert burst["total"] >= 10 and any(item["id"] == "PFE-neg-0" for item in burst["items"])
    second_page = client.get("/api/v1/articles", params={"entity": "PFE", "limit": 5, "offset": 5}, headers=READ).json()
    assert not {item["id"] for item in second_page["items"]} & {item["id"] for item in body["items"]}
    everything = client.get("/api/v1/articles", params={"limit": 500}, headers=READ).json()
    assert everything["total"] > body["total"] and len(everything["items"]) == min(500, everything["total"])


def test_alerts_with_evidence_one_alert_and_filters(client: TestClient) -> None:
    alert = only_alert(client)
    assert alert["entity"] == "PFE" and alert["rule"] == "negative_news" and alert["width_seconds"] == 300
    assert alert["acknowledged_at"] is None and alert["silenced"] is False and alert["horizon"]
    assert alert["evidence"]["top_negative"][0]["id"] == "PFE-neg-0"
    assert {"first", "peak", "latest"} <= set(alert["evidence"])
    assert (alert["resolved_at"] is None) == (alert["state"] == "firing")
    fired_bucket = datetime.fromisoformat(alert["evidence"]["first"]["bucket_start"])
    assert datetime.fromisoformat(alert["bucket_start"]) == fired_bucket, "the event time it fired at"
    assert ZULU.match(alert["bucket_start"]) and alert["last_bucket_start"] >= alert["bucket_start"]
    one = client.get(f"/api/v1/alerts/{alert['id']}", headers=READ)
    assert one.status_code == 200 and one.json() == alert

    other_state = "firing" if alert["state"] == "resolved" else "resolved"
    assert client.get("/api/v1/alerts", params={"state": alert["state"]}, headers=READ).json()["total"] == 1
    assert client.get("/api/v1/alerts", params={"state": other_state}, headers=READ).json()["total"] == 0
    assert client.get("/api/v1/alerts", params={"entity": "aapl"}, headers=READ).json()["items"] == []
    assert client.get("/api/v1/alerts", params={"acknowledged": "true"}, headers=READ).json()["total"] == 0


def test_ack_then_get_shows_acknowledged_at_and_a_second_ack_keeps_it(client: TestClient) -> None:
    alert = only_alert(client)
    acked = client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=WRITE)
    assert acked.status_code == 200, acked.text
    first_time = acked.json()["acknowledged_at"]
    assert first_time is not None and ZULU.match(first_time)
    assert client.get(f"/api/v1/alerts/{alert['id']}", headers=READ).json()["acknowledged_at"] == first_time
    again = client.post(f"/api/v1/alerts/{alert['id']}/ack", headers=WRITE)
    assert again.json()["acknowledged_at"] == first_time, "acking again keeps the first time"
    assert client.get("/api/v1/alerts", params={"acknowledged": "true"}, headers=READ).json()["total"] == 1
    assert client.get("/api/v1/alerts", params={"acknowledged": "false"}, headers=READ).json()["total"] == 0


def test_silences_create_list_and_end(client: TestClient) -> None:
    created = client.post("/api/v1/silences", json={"entity": "p*", "duration": "2h", "reason": "recall story"}, headers=WRITE)
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["entity_glob"] == "P*" and silence["active"] is True and silence["reason"] == "recall story"
    assert silence["matched_entities"] == ["PFE"]
    ends_at = datetime.fromisoformat(silence["ends_at"])
    assert timedelta(hours=1, minutes=59) < ends_at - datetime.fromisoformat(silence["created_at"]) < timedelta(hours=2, minutes=1)

    until = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    second = client.post("/api/v1/silences", json={"entity": "XOM", "ends_at": until}, headers=WRITE)
    assert second.status_code == 201 and second.json()["matched_entities"] == ["XOM"]

    listed = client.get("/api/v1/silences", headers=READ).json()
    assert listed["total"] == 2 and [item["id"] for item in listed["items"]] == [second.json()["id"], silence["id"]]
    assert client.delete(f"/api/v1/silences/{silence['id']}", headers=WRITE).status_code == 204
    assert client.delete(f"/api/v1/silences/{silence['id']}", headers=WRITE).status_code == 204, "ending it again changes nothing"
    after = {item["id"]: item for item in client.get("/api/v1/silences", headers=READ).json()["items"]}
    assert after[silence["id"]]["active"] is False and after[second.json()["id"]]["active"] is True


# --- authorisation -------------------------------------------------------------------------------

GETS = ["/api/v1/entities", "/api/v1/entities/PFE/series", "/api/v1/articles", "/api/v1/alerts", "/api/v1/silences"]


@pytest.mark.parametrize("path", GETS)
def test_reads_need_a_known_token(client: TestClient, path: str) -> None:
    missing = client.get(path)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in missing.json()["detail"]
    unknown = client.get(path, headers={"Authorization": "Bearer not-a-configured-token"})
    assert unknown.status_code == 401 and unknown.headers["www-authenticate"].startswith("Bearer")
    assert "not-a-configured-token" not in unknown.text
    assert client.get(path, headers={"Authorization": f"Basic {READ_TOKEN}"}).status_code == 401
    assert client.get(path, headers=READ).status_code == 200
    assert client.get(path, headers=WRITE).status_code == 200, "write implies read"


def test_writes_need_a_write_token(client: TestClient) -> None:
    alert = only_alert(client)
    body = {"entity": "PFE", "duration": "1h"}
    for method, path, payload in [("POST", f"/api/v1/alerts/{alert['id']}/ack", None), ("POST", "/api/v1/silences", body),
                                  ("DELETE", "/api/v1/silences/1", None)]:
        assert client.request(method, path, json=payload).status_code == 401
        assert client.request(method, path, json=payload, headers={"Authorization": "Bearer unknown"}).status_code == 401
        forbidden = client.request(method, path, json=payload, headers=READ)
        assert forbidden.status_code == 403 and "write" in forbidden.json()["detail"]
    assert only_alert(client)["acknowledged_at"] is None, "a refused ack changes nothing"
    assert client.get("/api/v1/silences", headers=READ).json()["total"] == 0


# --- 404s and 422s -------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/entities/NOSUCH/series"), ("GET", "/api/v1/alerts/987654"), ("POST", "/api/v1/alerts/987654/ack"),
    ("DELETE", "/api/v1/silences/987654"),
])
def test_missing_things_are_404_with_one_line(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, headers=WRITE)
    detail = response.json()["detail"]
    assert response.status_code == 404 and "\n" not in detail and ("987654" in detail or "'NOSUCH'" in detail), detail


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/api/v1/entities", {"limit": "0"}, "query parameter limit='0' is invalid"),
    ("/api/v1/entities", {"limit": "501"}, "less than or equal to 500"),
    ("/api/v1/articles", {"offset": "-1"}, "query parameter offset='-1' is invalid"),
    ("/api/v1/entities", {"order": "loud"}, "'active' or 'negative'"),
    ("/api/v1/alerts", {"state": "open"}, "'firing' or 'resolved'"),
    ("/api/v1/alerts", {"acknowledged": "maybe"}, "expected true or false"),
    ("/api/v1/entities", {"since": "yesterday"}, "query parameter since: 'yesterday' is not a date or time"),
    ("/api/v1/articles", {"until": "2026-03-02T10:00"}, "has no time zone"),
    ("/api/v1/articles", {"since": "2026-03-03", "until": "2026-03-02"}, "must be after since"),
    ("/api/v1/entities/PFE/series", {"width": "7m"}, "width=7m is not a stored bucket width: choose one of 5m, 1h"),
    ("/api/v1/entities/PFE/series", {"width": "soon"}, "is not a duration: choose one of 5m, 1h"),
    ("/api/v1/entities/PFE/series", {"since": "1980-01-01", "fill": "true"}, "more than 20000 with fill=true"),
    ("/api/v1/entities/PFE/series", {"since": "0001-01-01T00:00:00+05:00"}, "outside the years 1 to 9999"),
])
def test_bad_values_are_one_readable_line(client: TestClient, path: str, params: dict[str, str], message: str) -> None:
    response = client.get(path, params=params, headers=READ)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and message in detail, detail


@pytest.mark.parametrize(("body", "message"), [
    ({"entity": "PFE"}, "give either body field duration"),
    ({"entity": "PFE", "duration": "1h", "ends_at": "2099-01-01"}, "not both"),
    ({"entity": "PFE", "duration": "31d"}, "longer than FINSENT_SILENCE_MAX=30d"),
    ({"entity": "PFE", "duration": "often"}, "is not a duration"),
    ({"entity": "PFE", "ends_at": "2020-01-01"}, "is not in the future"),
    ({"entity": "PFE", "ends_at": "2999-01-01"}, "further away than FINSENT_SILENCE_MAX=30d"),
    ({"duration": "1h"}, "body field entity is required"),
    ({"entity": "PFE", "duration": "1h", "until": "x"}, "body field until is not accepted"),
    ({"entity": "P\x00E", "duration": "1h"}, "body field entity="),
])
def test_bad_silences_are_one_readable_line(client: TestClient, body: dict[str, str], message: str) -> None:
    response = client.post("/api/v1/silences", json=body, headers=WRITE)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"] and "\n" not in response.json()["detail"]
    assert client.get("/api/v1/silences", headers=READ).json()["total"] == 0


def test_the_spec_declares_every_route_with_its_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {"/healthz", "/api/v1/entities", "/api/v1/entities/{entity}/series", "/api/v1/articles",
                                  "/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/{alert_id}/ack",
                                  "/api/v1/silences", "/api/v1/silences/{silence_id}"}
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    ack = spec["paths"]["/api/v1/alerts/{alert_id}/ack"]["post"]
    assert {"200", "401", "403", "404", "422"} <= set(ack["responses"])
    assert ack["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "HTTPValidationError" not in spec["components"]["schemas"], "422s are one line, as declared"
    assert client.get("/docs").status_code == 200


def test_dashboard_and_static_need_no_token(client: TestClient) -> None:
    page = client.get("/")
    index = Path(__file__).resolve().parents[2] / "pipeline" / "api" / "static" / "index.html"
    if index.is_file():
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert client.get("/static/index.html").status_code == 200
    else:
        assert page.status_code == 404 and "index.html" in page.json()["detail"]
    assert client.get("/static/no-such-file.js").status_code == 404


def test_cors_is_off_by_default_and_on_for_configured_origins(engine: Engine, database_url: str) -> None:
    preflight = {"Origin": "https://dash.example.com", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    off = Settings.load({"FINSENT_DATABASE_URL": database_url, "FINSENT_API_TOKENS": TOKENS})
    with TestClient(create_app(off, engine)) as client:
        assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": "https://dash.example.com"}).headers
        assert "access-control-allow-origin" not in client.options("/api/v1/entities", headers=preflight).headers
    on = Settings.load({"FINSENT_DATABASE_URL": database_url, "FINSENT_API_TOKENS": TOKENS,
                        "FINSENT_API_CORS_ORIGINS": "https://dash.example.com"})
    with TestClient(create_app(on, engine)) as client:
        allowed = client.options("/api/v1/entities", headers=preflight)
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://dash.example.com"
        other = client.options("/api/v1/entities", headers={**preflight, "Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers


# --- finsent serve -------------------------------------------------------------------------------


def serve_environment(database_url: str, data_dir: Path) -> dict[str, str]:
    return {"FINSENT_DATABASE_URL": database_url, "FINSENT_DATA_DIR": str(data_dir), "FINSENT_API_TOKENS": ""}


def test_serve_refuses_every_interface_without_tokens(database_url: str, tmp_path: Path) -> None:
    server = WorkerProcess(serve_environment(database_url, tmp_path), tmp_path / "serve.log", "serve",
                           ("--host", "0.0.0.0", "--port", "0")).start()
    try:
        assert server.wait(timeout_s=120) == 2
    finally:
        server.kill()
    lines = server.log_text().strip().splitlines()
    assert lines == ["finsent: error: --host 0.0.0.0 is reachable from other hosts and FINSENT_API_TOKENS is empty: "
                     "set FINSENT_API_TOKENS (e.g. read:TOKEN,write:TOKEN) or serve on 127.0.0.1"]


def test_serve_on_loopback_without_tokens_serves_with_a_warning(engine: Engine, database_url: str, tmp_path: Path) -> None:
    server = WorkerProcess(serve_environment(database_url, tmp_path), tmp_path / "serve.log", "serve",
                           ("--host", "127.0.0.1", "--port", "0")).start()
    try:
        started = wait_until(lambda: re.search(r"event=api_serving url=(http://127\.0\.0\.1:\d+) docs=(\S+)", server.log_text())
                             or not server.running, 120, what="the api_serving line")
        assert server.running, server.log_text()
        url = started.group(1)
        assert started.group(2) == f"{url}/docs"
        assert "level=warning" in server.log_text() and "event=api_unauthenticated" in server.log_text()
        health = httpx.get(f"{url}/healthz", timeout=30)
        assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}
        assert httpx.get(f"{url}/api/v1/alerts", timeout=30).json()["total"] == 0, "no token needed on loopback without tokens"
        server.send(signal.SIGTERM)
        assert server.wait(timeout_s=60) == 143, server.log_text()
    finally:
        server.kill()
    assert "finsent: terminated" in server.log_text() and "Traceback" not in server.log_text()


def test_serve_with_tokens_on_every_interface(engine: Engine, database_url: str, tmp_path: Path) -> None:
    environment = serve_environment(database_url, tmp_path) | {"FINSENT_API_TOKENS": TOKENS}
    server = WorkerProcess(environment, tmp_path / "serve.log", "serve", ("--host", "0.0.0.0", "--port", "0")).start()
    try:
        started = wait_until(lambda: re.search(r"event=api_serving url=http://0\.0\.0\.0:(\d+)", server.log_text())
                             or not server.running, 120, what="the api_serving line")
        assert server.running, server.log_text()
        url = f"http://127.0.0.1:{started.group(1)}"
        assert httpx.get(f"{url}/api/v1/alerts", timeout=30).status_code == 401
        assert httpx.get(f"{url}/api/v1/alerts", headers=READ, timeout=30).status_code == 200
        server.send(signal.SIGINT)
        assert server.wait(timeout_s=60) == 130, server.log_text()
    finally:
        server.kill()
    log = server.log_text()
    assert "api_unauthenticated" not in log and READ_TOKEN not in log and WRITE_TOKEN not in log


def test_unknown_query_parameters_and_methods_are_refused(client: TestClient) -> None:
    typo = client.get("/api/v1/articles", params={"limt": "5"}, headers=READ)
    assert typo.status_code == 422
    assert typo.json()["detail"] == ("query parameter 'limt' is not accepted by /api/v1/articles: "
                                     "it takes entity, limit, offset, since, until")
    twice = client.get("/api/v1/alerts?entity=AAPL&entity=MSFT", headers=READ)
    assert twice.status_code == 422
    assert twice.json()["detail"] == "query parameter 'entity' is given more than once: it takes one value, send it once"
    wrong = client.request("PUT", "/api/v1/silences", headers=WRITE)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, POST"
    assert wrong.json()["detail"] == "PUT is not allowed on /api/v1/silences: use GET or POST"
    unreadable = client.post("/api/v1/silences", content=b"\xff{", headers={**WRITE, "Content-Type": "application/json"})
    assert unreadable.status_code == 422 and "\n" not in unreadable.json()["detail"]
