"""Live detection passes on a real PostgreSQL: one alert per story, evidence, no doubles."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from pipeline.alerting.alert_store import store_transitions
from pipeline.alerting.backtest import run_backtest
from pipeline.alerting.detection_pass import DetectionPass, DetectionSchedule, evidence_reader
from pipeline.alerting.judging import judge_span
from pipeline.alerting.lifecycle import FIRED, LifecyclePolicy
from pipeline.alerting.rules import DetectionRules
from storage.models import Alert, AlertEvent, Article, Delivery, DetectionProgress
from tests.support.alert_history import MARKET, WIDTH, bucket, write_burst_articles, write_history

RULES = DetectionRules()
POLICY = LifecyclePolicy(resolve_buckets=3, repeat_interval=timedelta(hours=4))
SCHEDULE = DetectionSchedule(widths=(WIDTH,), lateness=timedelta(minutes=2), idle_close=timedelta(minutes=10),
                             market_entity=MARKET)


def route(_entity: str, _severity: str) -> list[str]:
    return ["log", "webhook"]


def detection(engine: Engine, now: datetime) -> DetectionPass:
    return DetectionPass(engine, RULES, POLICY, SCHEDULE, route, clock=lambda: now)


def test_one_pass_raises_one_alert_with_evidence_and_queues_its_deliveries(engine: Engine) -> None:
    write_history(engine, ["PFE", "AAPL", "XOM"], 120, burst_entity="PFE", burst_at=100)
    report = detection(engine, bucket(200)).run()
    assert report.stored.transitions == {"fired": 1}, "the story is still in its day-long horizon: not resolved"
    with Session(engine) as session:
        alerts = session.scalars(select(Alert)).all()
        assert [(a.entity, a.rule, a.bucket_start, a.state) for a in alerts] == [("PFE", "negative_news", bucket(100), "firing")]
        evidence = alerts[0].evidence
        assert set(evidence) >= {"first", "peak", "latest"}
        first = evidence["first"]
        assert first["bucket_start"] == bucket(100).isoformat() and first["observed"] >= 10
        assert first["tail_probability"] <= RULES.threshold and first["expected"] < 1
        assert first["baseline_source"] == "prior" and first["horizon"] in ("1h", "6h", "1d", "3d")
        assert [h["id"] for h in first["top_negative"]] == ["PFE-neg-0", "PFE-neg-1", "PFE-neg-2"]
        latest = evidence["latest"]
        assert (alerts[0].value, alerts[0].baseline) == pytest.approx((latest["observed"], latest["expected"]), rel=1e-5), \
            "value, baseline and evidence describe one moment"
        deliveries = session.execute(select(Delivery.channel, Delivery.event).order_by(Delivery.event, Delivery.channel)).all()
        assert [d.channel for d in deliveries] == ["log", "webhook"]
        # Idle for over FINSENT_ALERT_IDLE_CLOSE: the wall clock closes every bucket up to now.
        assert session.scalar(select(DetectionProgress.evaluated_through)) == bucket(198)
    again = detection(engine, bucket(200)).run()
    assert again.stored.transitions == {} and again.judged == {}


def test_a_never_judged_database_is_judged_from_its_first_bucket(engine: Engine) -> None:
    """A long replay's first live pass judges all of it (as a backtest of the same data would)."""
    write_history(engine, ["PFE", "AAPL"], 700, burst_entity="PFE", burst_at=100)
    report = detection(engine, bucket(800)).run()
    assert report.judged[WIDTH][0] == bucket(0)
    assert report.stored.transitions.get("fired") == 1
    backtest = run_backtest(engine, RULES, POLICY, WIDTH, bucket(0), bucket(800), MARKET)
    assert backtest.alerts[["entity", "fired_bucket"]].values.tolist() == [["PFE", pd.Timestamp(bucket(100))]]


def test_a_burst_after_an_article_dated_9999_still_alerts(engine: Engine) -> None:
    """An article from the far future (stored before validation refused such times) must not move
    the watermark past the wall clock: quiet passes never mark unjudged buckets as done."""
    write_history(engine, ["PFE", "AAPL"], 120, burst_entity="PFE", burst_at=100)
    with engine.begin() as connection:
        connection.execute(insert(Article), [{"id": "far-future", "published_at": datetime(9999, 12, 31, tzinfo=timezone.utc),
                                              "headline": "from the future", "body": "", "source": "t", "url": None,
                                              "lang": "en", "ingested_at": bucket(10)}])
    fired = 0
    for now in (bucket(90), bucket(150), bucket(200)):  # idle passes: the wall clock closes buckets
        report = detection(engine, now).run()
        assert report.watermark == now, "the watermark never runs ahead of the wall clock"
        fired += report.stored.transitions.get("fired", 0)
    assert fired == 1


def test_bucket_by_bucket_passes_equal_one_pass_and_the_backtest(engine: Engine) -> None:
    write_history(engine, ["PFE", "AAPL"], 130, burst_entity="PFE", burst_at=100)
    # The newest article is at bucket 129; each pass sees the watermark a bucket further on.
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE articles SET ingested_at = now()")
    for k in range(98, 130):
        DetectionPass(engine, RULES, POLICY, SCHEDULE, route, clock=lambda k=k: bucket(k) + timedelta(minutes=8)).run()
    with Session(engine) as session:
        events = session.execute(select(AlertEvent.kind, AlertEvent.bucket_start).order_by(AlertEvent.id)).all()
        live = session.execute(select(Alert.entity, Alert.value, Alert.evidence)).one()
    assert [(e.kind, e.bucket_start) for e in events] == [(FIRED, bucket(100))]
    backtest = run_backtest(engine, RULES, POLICY, WIDTH, bucket(0), bucket(127), MARKET)
    assert backtest.alerts[["entity", "rule", "fired_bucket"]].values.tolist() == [["PFE", "negative_news", pd.Timestamp(bucket(100))]]
    assert backtest.alerts.iloc[0]["value"] == live.evidence["first"]["observed"]
    assert backtest.alerts.iloc[0]["tail_probability"] == live.evidence["first"]["tail_probability"]


def test_two_writers_of_the_same_transitions_store_one_alert_and_one_set_of_deliveries(engine: Engine) -> None:
    """The unique keys are the last guard when two schedulers judge the same bucket (no locks here)."""
    write_history(engine, ["PFE"], 120, burst_entity="PFE", burst_at=100)
    with engine.connect() as connection:
        span = judge_span(connection, WIDTH, bucket(0), bucket(101), RULES, POLICY, MARKET, {})
    firing, transitions = span.firing, span.transitions
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with Session(engine) as session, session.begin():
                barrier.wait()
                store_transitions(session, transitions, firing, evidence_reader(session, WIDTH), route)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 1
        assert session.scalar(select(func.count()).select_from(AlertEvent)) == 1
        assert session.scalar(select(func.count()).select_from(Delivery)) == 2


def test_silenced_entity_alerts_are_recorded_but_not_delivered(engine: Engine) -> None:
    from storage.models import Silence

    write_history(engine, ["PFE", "AAPL"], 120, burst_entity="PFE", burst_at=100)
    with Session(engine) as session, session.begin():
        session.add(Silence(entity_glob="PF*", ends_at=bucket(300), reason="known story"))
    report = detection(engine, bucket(200)).run()
    assert report.stored.transitions.get("fired") == 1
    with Session(engine) as session:
        assert session.scalar(select(Alert.silenced)) is True
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_a_burst_about_a_silent_entity_alerts_against_the_market_prior(engine: Engine) -> None:
    write_history(engine, ["AAPL", "XOM"], 120)
    with engine.begin() as connection:
        write_burst_articles(connection, "SIVB", bucket(110), 12)
    detection(engine, bucket(200)).run()
    with Session(engine) as session:
        alerts = session.execute(select(Alert.entity, Alert.rule, Alert.evidence)).all()
    assert [(a.entity, a.rule) for a in alerts] == [("SIVB", "negative_news")]
    assert alerts[0].evidence["first"]["baseline_source"] == "prior"
    assert alerts[0].evidence["first"]["prior_rate"] > 0
