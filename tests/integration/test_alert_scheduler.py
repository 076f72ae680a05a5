"""`finsent scheduler` as users run it: real processes, a real webhook receiver, real PostgreSQL,
and (end to end) real news through Kafka scored by the shipped model."""

from __future__ import annotations

import json
import signal
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from pipeline.config import Settings
from pipeline.series import bucket_start
from storage.models import Alert, AlertEvent
from tests.conftest import Topics
from tests.integration.test_ingestion import RunningWorker
from tests.support.alert_history import WIDTH, write_history
from tests.support.broker_io import produce, wait_until
from tests.support.http_receiver import HttpEndpoint
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def scheduler_environment(database_url: str, webhook_url: str) -> dict[str, str]:
    return {
        "FINSENT_DATABASE_URL": database_url,
        "FINSENT_ALERT_INTERVAL": "1s",
        "FINSENT_ALERT_KAFKA": "false",
        "FINSENT_ALERT_WEBHOOK_URL": webhook_url,
        "FINSENT_ALERT_WEBHOOK_SECRET": "test-secret",
        "FINSENT_LOG_LEVEL": "INFO",
    }


def events_received(endpoint: HttpEndpoint) -> list[tuple[str, str, str]]:
    return [(r.json()["event"], r.json()["entity"], r.headers["idempotency-key"]) for r in endpoint.requests]


def test_two_scheduler_processes_elect_one_leader_and_notify_once(engine: Engine, database_url: str, tmp_path: Path) -> None:
    start = bucket_start(datetime.now(timezone.utc), WIDTH) - timedelta(seconds=WIDTH * 120)
    write_history(engine, ["PFE", "AAPL"], 120, burst_entity="PFE", burst_at=100, start=start)
    endpoint = HttpEndpoint()
    environment = scheduler_environment(database_url, endpoint.url)
    first = WorkerProcess(environment, tmp_path / "first.log", command="scheduler").start()
    second: WorkerProcess | None = None
    try:
        wait_until(lambda: "role=leader" in first.log_text(), timeout_s=60, what="the first scheduler to lead")
        second = WorkerProcess(environment, tmp_path / "second.log", command="scheduler").start()
        wait_until(lambda: "role=standby" in second.log_text(), timeout_s=60, what="the second scheduler to stand by")
        wait_until(lambda: len(endpoint.requests) >= 1, timeout_s=60, what="the fired notification")
        first.kill()  # a crash: PostgreSQL releases the leader lock with the connection
        wait_until(lambda: "role=leader" in second.log_text(), timeout_s=60, what="the standby to take over")
        wait_until(lambda: second.log_text().count("event=detection_pass") >= 3, timeout_s=60, what="passes by the new leader")
        second.send(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        first.kill()
        if second is not None:
            second.kill()
        endpoint.close()
    received = events_received(endpoint)
    assert [kind for kind, _, _ in received] == ["fired"], "the story is still in its horizons: fired once, not resolved"
    assert {entity for _, entity, _ in received} == {"PFE"}
    assert len({key for _, _, key in received}) == len(received), "a notification was sent twice"
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 1
        assert session.scalar(select(func.count()).select_from(AlertEvent)) == 1


COMPANIES = {
    "AAPL": "Apple", "MSFT": "Microsoft", "AMZN": "Amazon", "GOOGL": "Alphabet", "META": "Meta", "NVDA": "Nvidia",
    "TSLA": "Tesla", "JPM": "JPMorgan", "XOM": "Exxon Mobil", "WMT": "Walmart", "KO": "Coca-Cola", "DIS": "Disney",
    "INTC": "Intel", "BA": "Boeing", "NFLX": "Netflix", "PFE": "Pfizer",
}
ROUTINE = [
    "{name} to hold its annual general meeting on Tuesday",
    "{name} names new head of investor relations",
    "{name} will publish its interim report on 5 May",
    "{name} schedules a conference call for analysts next week",
]
BAD_NEWS = [
    "Pfizer shares plunge after regulator halts sales of its top drug",
    "Pfizer recalls millions of vaccine doses after contamination found",
    "Pfizer slashes profit forecast as lawsuits mount; stock tumbles",
    "Pfizer faces fraud probe over trial data, shares sink",
    "Pfizer cuts dividend and warns of steep loss",
    "Pfizer plant shut after safety failures, output collapses",
    "Analysts downgrade Pfizer after disastrous quarter",
    "Pfizer loses patent case, wiping billions off its value",
]
NEWS_START = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
BUCKETS = 24
BURST_BUCKET = 16


def news_with_one_bad_story() -> list[tuple[bytes | None, bytes]]:
    """Routine news for 16 tickers (2 per 5-minute bucket each) for 2 hours, and 8 bad headlines
    about Pfizer inside one bucket 80 minutes in (detection needs an hour of news for its prior)."""
    messages = []
    for k in range(BUCKETS):
        for ticker_index, (ticker, name) in enumerate(COMPANIES.items()):
            for n in range(2):
                published = NEWS_START + timedelta(seconds=WIDTH * k + 60 * n + 7 * ticker_index)
                headline = ROUTINE[(k + n + ticker_index) % len(ROUTINE)].format(name=name)
                messages.append({"id": f"routine-{k}-{ticker}-{n}", "published_at": published.isoformat(),
                                 "headline": headline, "tickers": [ticker]})
    for n, headline in enumerate(BAD_NEWS):
        published = NEWS_START + timedelta(seconds=WIDTH * BURST_BUCKET + 20 + 30 * n)
        messages.append({"id": f"bad-{n}", "published_at": published.isoformat(), "headline": headline, "tickers": ["PFE"]})
    return [(None, json.dumps(message).encode()) for message in messages]


def test_negative_burst_on_kafka_raises_one_alert_for_that_ticker_and_notifies_once(
    settings: Settings, engine: Engine, topics: Topics, kafka_bootstrap: str, database_url: str, tmp_path: Path,
    worker_environment: dict[str, str],
) -> None:
    messages = news_with_one_bad_story()
    produce(kafka_bootstrap, topics.news, messages)
    worker = RunningWorker(settings)
    try:
        wait_until(lambda: _count(engine, "article_scores") == len(messages), timeout_s=300, what="every article scored")
    finally:
        worker.stop()
    endpoint = HttpEndpoint()
    environment = {**worker_environment, **scheduler_environment(database_url, endpoint.url)}
    scheduler = WorkerProcess(environment, tmp_path / "scheduler.log", command="scheduler").start()
    try:
        wait_until(lambda: any(r.json()["event"] == "fired" for r in endpoint.requests), timeout_s=90,
                   what=f"a fired notification; scheduler log:\n{scheduler.log_text()[-3000:]}")
        wait_until(lambda: scheduler.log_text().count("event=detection_pass") >= 3, timeout_s=60, what="more passes")
        scheduler.send(signal.SIGTERM)
        assert scheduler.wait(30) == 0
    finally:
        scheduler.kill()
        endpoint.close()

    with Session(engine) as session:
        alerts = session.execute(select(Alert.entity, Alert.rule, Alert.bucket_start)).all()
    company = [a for a in alerts if a.rule == "negative_news"]
    burst = NEWS_START + timedelta(seconds=WIDTH * BURST_BUCKET)
    assert [a.entity for a in company] == ["PFE"], f"alerts for quiet tickers: {alerts}"
    assert burst <= company[0].bucket_start <= burst + timedelta(hours=1), "alerts as the story breaks"

    fired = [r.json() for r in endpoint.requests if r.json()["event"] == "fired"]
    assert Counter((f["entity"], f["rule"]) for f in fired if f["rule"] == "negative_news") == Counter({("PFE", "negative_news"): 1})
    evidence = next(f for f in fired if f["rule"] == "negative_news")["evidence"]["first"]
    assert evidence["observed"] >= 3 and evidence["observed"] > evidence["expected"]
    assert evidence["tail_probability"] <= evidence["threshold"]
    top = evidence["top_negative"]
    assert len(top) == 3 and all(item["id"].startswith("bad-") for item in top)
    assert all(item["headline"] in BAD_NEWS for item in top)


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() or 0)
