"""Scoring alerts against known events (pipeline/alerting/evaluation.py) on small synthetic frames."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest

from pipeline.alerting.evaluation import daily_coverage, evaluate_alerts

MARKET = "MARKET"
D = datetime(2026, 5, 10, tzinfo=timezone.utc)
"""Midnight UTC of the synthetic event day."""


def alerts(*rows: tuple[str, datetime]) -> pd.DataFrame:
    return pd.DataFrame([{"entity": entity, "rule": "negative_burst", "fired_bucket": moment, "severity": "warning"}
                         for entity, moment in rows], columns=["entity", "rule", "fired_bucket", "severity"])


def events(*rows: tuple[str, date]) -> pd.DataFrame:
    return pd.DataFrame([{"ticker": ticker, "event_date": day, "what": "synthetic"} for ticker, day in rows],
                        columns=["ticker", "event_date", "what"])


def coverage(*rows: tuple[str, datetime]) -> pd.DataFrame:
    return daily_coverage(pd.DataFrame([{"entity": entity, "published_at": moment} for entity, moment in rows]))


def evaluate(alert_rows: pd.DataFrame, event_rows: pd.DataFrame, articles: pd.DataFrame, start: datetime | None = None):  # type: ignore[no-untyped-def]
    return evaluate_alerts(alert_rows, event_rows, articles, MARKET, evaluate_from=start)


@pytest.mark.parametrize(("fired", "detected"), [
    (D - timedelta(days=1), True),                                   # D - 1 day is inside
    (D - timedelta(days=1, minutes=5), False),                       # one bucket earlier is not
    (D + timedelta(days=2) - timedelta(minutes=5), True),            # the last bucket of D + 1
    (D + timedelta(days=2), False),                                  # D + 2 days is outside
])
def test_detection_window_is_d_minus_one_inclusive_to_d_plus_two_exclusive(fired: datetime, detected: bool) -> None:
    result = evaluate(alerts(("ACME", fired)), events(("ACME", D.date())), coverage(("ACME", D - timedelta(days=3))))
    assert result.events["detected"].tolist() == [detected]
    assert result.recall == (1.0 if detected else 0.0)


def test_the_earliest_alert_in_the_window_detects_and_the_delay_runs_from_the_first_article_of_the_window() -> None:
    articles = coverage(("ACME", D - timedelta(days=2)),                  # before the window: not the start of the delay
                        ("ACME", D + timedelta(hours=9)), ("ACME", D + timedelta(hours=11)))
    result = evaluate(alerts(("ACME", D + timedelta(hours=15)), ("ACME", D + timedelta(hours=14)), ("OTHER", D)),
                      events(("ACME", D.date())), articles)
    row = result.events.iloc[0]
    assert row["fired_bucket"] == pd.Timestamp(D + timedelta(hours=14))
    assert row["first_article_at"] == pd.Timestamp(D + timedelta(hours=9))
    assert row["delay_hours"] == pytest.approx(5.0)
    assert (row["rule"], row["severity"]) == ("negative_burst", "warning")
    assert result.median_delay_hours == pytest.approx(5.0)


def test_an_alert_whose_bucket_starts_before_the_windows_first_article_has_no_delay() -> None:
    result = evaluate(alerts(("ACME", D - timedelta(hours=20))), events(("ACME", D.date())),
                      coverage(("ACME", D - timedelta(hours=18))))
    assert result.events["delay_hours"].tolist() == [0.0]


def test_a_missed_event_has_no_alert_and_no_delay() -> None:
    result = evaluate(alerts(), events(("ACME", D.date()), ("BETA", D.date())), coverage(("ACME", D), ("BETA", D)))
    assert result.events["detected"].tolist() == [False, False]
    assert result.events["delay_hours"].isna().all() and result.events["fired_bucket"].isna().all()
    assert result.recall == 0.0 and result.median_delay_hours is None


@pytest.mark.parametrize(("fired", "unlisted"), [
    (D - timedelta(days=7), False),                                  # the first moment of day D - 7
    (D - timedelta(days=7, minutes=5), True),                        # day D - 8
    (D + timedelta(days=8) - timedelta(minutes=5), False),           # the last bucket of day D + 7
    (D + timedelta(days=8), True),                                   # day D + 8
])
def test_an_alert_within_seven_days_of_a_listed_event_of_its_ticker_is_not_unlisted(fired: datetime, unlisted: bool) -> None:
    result = evaluate(alerts(("ACME", fired)), events(("ACME", D.date())), coverage(("ACME", D)))
    assert len(result.unlisted) == int(unlisted)
    assert result.company_alerts == 1


def test_an_event_of_another_ticker_does_not_excuse_an_alert() -> None:
    result = evaluate(alerts(("BETA", D)), events(("ACME", D.date())), coverage(("ACME", D), ("BETA", D)))
    assert result.unlisted["entity"].tolist() == ["BETA"]
    assert result.events["detected"].tolist() == [False]


def test_ticker_months_count_the_months_with_articles_from_evaluate_from_on() -> None:
    start = datetime(2026, 3, 20, tzinfo=timezone.utc)
    articles = coverage(
        ("ACME", datetime(2026, 2, 10, tzinfo=timezone.utc)),        # before evaluate-from: not counted
        ("ACME", datetime(2026, 3, 20, 8, tzinfo=timezone.utc)),     # March counts from the 20th on
        ("ACME", datetime(2026, 3, 21, tzinfo=timezone.utc)),        # same month: still one
        ("ACME", datetime(2026, 5, 1, tzinfo=timezone.utc)),         # April has none: May is the second
        ("BETA", datetime(2026, 3, 19, 23, tzinfo=timezone.utc)),    # BETA's only March article is too early
        ("BETA", datetime(2026, 4, 30, 23, 59, tzinfo=timezone.utc)),
        ("MARKET", datetime(2026, 4, 2, tzinfo=timezone.utc)),       # the market entity is not a ticker
    )
    unlisted = alerts(("ACME", datetime(2026, 4, 1, tzinfo=timezone.utc)), ("BETA", datetime(2026, 4, 2, tzinfo=timezone.utc)),
                      ("BETA", datetime(2026, 5, 2, tzinfo=timezone.utc)))
    result = evaluate(unlisted, events(), articles, start)
    assert (result.tickers, result.ticker_months) == (2, 3)
    assert result.unlisted_per_ticker_month == pytest.approx(1.0)
    assert result.recall is None, "no events, no recall"


def test_a_day_whose_articles_straddle_evaluate_from_counts_its_month() -> None:
    start = datetime(2026, 3, 20, 12, tzinfo=timezone.utc)
    articles = coverage(("ACME", datetime(2026, 3, 20, 9, tzinfo=timezone.utc)), ("ACME", datetime(2026, 3, 20, 13, tzinfo=timezone.utc)),
                        ("BETA", datetime(2026, 3, 20, 9, tzinfo=timezone.utc)))
    assert evaluate(alerts(), events(), articles, start).ticker_months == 1


def test_market_alerts_are_counted_apart_and_never_unlisted_or_detecting() -> None:
    result = evaluate(alerts((MARKET, D), (MARKET, D + timedelta(days=40)), ("ACME", D + timedelta(days=40))),
                      events((MARKET, D.date()), ("ACME", D.date())),
                      coverage(("ACME", D), ("ACME", D + timedelta(days=40)), (MARKET, D)))
    assert result.market_alerts == 2
    assert result.unlisted["entity"].tolist() == ["ACME"]
    assert result.company_alerts == 1
    assert result.events["detected"].tolist() == [False, False]
    assert result.ticker_months == 2, "ACME in May and June; the market entity has no ticker-months"


def test_alerts_and_events_before_evaluate_from_are_not_counted() -> None:
    start = D + timedelta(days=30)
    early = D - timedelta(days=20)
    result = evaluate(alerts(("ACME", early), (MARKET, early), ("ACME", D + timedelta(hours=3)), ("BETA", start + timedelta(days=1))),
                      events(("ACME", D.date()), ("BETA", (start + timedelta(days=1)).date())),
                      coverage(("ACME", D), ("BETA", start + timedelta(hours=5))), start)
    assert result.unlisted.empty and result.market_alerts == 0 and result.company_alerts == 1
    by_ticker = result.events.set_index("ticker")
    assert bool(by_ticker.loc["ACME", "detected"]) and not by_ticker.loc["ACME", "counted"], "reported, not counted"
    assert result.counted_events == 1 and result.detected_events == 1 and result.recall == 1.0
    assert result.median_delay_hours == pytest.approx(19.0), "BETA: from its first article (05:00) to the alert (+1 day)"


def test_event_dates_may_be_text_and_alert_buckets_python_datetimes() -> None:
    result = evaluate(alerts(("ACME", D + timedelta(hours=2))), events(("ACME", "2026-05-10")), coverage(("ACME", D + timedelta(hours=1))))
    assert result.events["event_date"].tolist() == [date(2026, 5, 10)]
    assert result.events["delay_hours"].tolist() == [pytest.approx(1.0)]
