"""Alert quality against known events: recall, delay and unlisted alerts per ticker-month.

Pure (frames in, frames out, no I/O), so that `finsent backtest --events` and `bench/alerts_real.py`
score alerts by one set of rules:

- An event (ticker, D) is detected when an alert for that ticker has its first bucket in
  [D - 1 day, D + 2 days) (UTC days); the earliest such alert is the event's alert. Its delay runs
  from the ticker's first article on or after D - 1 day to that alert's first bucket (0 when the
  alert's bucket starts before that article: it fired on earlier news, or inside the article's bucket).
- Recall counts the events dated on or after `evaluate_from` (and before `evaluate_to`); earlier ones
  are still reported, as not counted. The median delay is over the counted events that were detected.
- An unlisted alert is a company alert whose day is more than 7 days from every listed event of its
  ticker (counted or not). Unlisted alerts are counted per ticker-month: for each ticker, the
  calendar months of the evaluated span in which it has at least one article, summed over tickers.
- The market-wide entity's alerts are their own class: counted apart, never unlisted or detecting.
- Alerts before `evaluate_from` (or from `evaluate_to` on) are not counted as unlisted or market alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

DETECTION_BEFORE = timedelta(days=1)
DETECTION_AFTER = timedelta(days=2)
"""An event on day D is detected by an alert whose first bucket is in [D - 1 day, D + 2 days)."""
NEAR_EVENT_DAYS = 7
"""An alert within this many days of a listed event of its ticker is not unlisted."""
COVERAGE_COLUMNS = ["entity", "day", "first_published_at", "last_published_at"]
ALERT_IDENTITY = ("id", "rule", "width_seconds", "fired_bucket", "severity")
"""Columns of the detecting alert copied into the per-event report, where the alerts frame has them."""
EVENT_COLUMNS = ["ticker", "event_date", "counted", "detected", "first_article_at", "delay_hours"]


@dataclass(frozen=True)
class AlertEvaluation:
    events: pd.DataFrame
    """One row per listed event: EVENT_COLUMNS, then the detecting alert's ALERT_IDENTITY columns (NaN/NaT when missed)."""
    unlisted: pd.DataFrame
    """The unlisted company alerts in the span, with every column the alerts frame had."""
    market: pd.DataFrame
    """The market entity's alerts in the span."""
    company_alerts: int
    """Alerts in the span for entities other than the market entity."""
    tickers: int
    """Entities other than the market entity with at least one article in the span."""
    ticker_months: int
    evaluate_from: pd.Timestamp | None
    evaluate_to: pd.Timestamp | None

    @property
    def counted_events(self) -> int:
        return int(self.events["counted"].sum())

    @property
    def detected_events(self) -> int:
        return int((self.events["counted"] & self.events["detected"]).sum())

    @property
    def recall(self) -> float | None:
        return self.detected_events / self.counted_events if self.counted_events else None

    @property
    def median_delay_hours(self) -> float | None:
        delays = self.events.loc[self.events["counted"] & self.events["detected"], "delay_hours"]
        return float(delays.median()) if len(delays) else None

    @property
    def unlisted_per_ticker_month(self) -> float | None:
        return len(self.unlisted) / self.ticker_months if self.ticker_months else None

    @property
    def market_alerts(self) -> int:
        return len(self.market)


def daily_coverage(articles: pd.DataFrame) -> pd.DataFrame:
    """COVERAGE_COLUMNS from one row per (entity, published_at) article mention: what
    `storage.queries.entity_days` reads in SQL, for callers that hold the articles themselves."""
    published = pd.to_datetime(articles["published_at"], utc=True)
    frame = pd.DataFrame({"entity": articles["entity"], "day": published.dt.floor("D"), "published_at": published})
    grouped = frame.groupby(["entity", "day"], as_index=False)["published_at"].agg(["min", "max"])
    return grouped.rename(columns={"min": "first_published_at", "max": "last_published_at"})[COVERAGE_COLUMNS]


def evaluate_alerts(
    alerts: pd.DataFrame,
    events: pd.DataFrame,
    coverage: pd.DataFrame,
    market_entity: str,
    evaluate_from: datetime | None = None,
    evaluate_to: datetime | None = None,
) -> AlertEvaluation:
    """Score `alerts` (entity, fired_bucket, ...) against `events` (ticker, event_date) by the rules
    above; `coverage` (COVERAGE_COLUMNS, see `daily_coverage`) gives the delays and the ticker-months.
    `evaluate_from`/`evaluate_to` bound the evaluated span (None: open)."""
    start = None if evaluate_from is None else pd.Timestamp(evaluate_from).tz_convert("UTC")
    end = None if evaluate_to is None else pd.Timestamp(evaluate_to).tz_convert("UTC")
    alerts = alerts.reset_index(drop=True)
    alerts = alerts.assign(fired_bucket=pd.to_datetime(alerts["fired_bucket"], utc=True))
    events = pd.DataFrame({"ticker": events["ticker"].astype(str), "event_day": _days(events["event_date"])})
    coverage = _typed_coverage(coverage)

    company = alerts[alerts["entity"] != market_entity]
    in_span = _within(alerts["fired_bucket"], start, end)
    market = alerts[(alerts["entity"] == market_entity) & in_span]
    company_in_span = company[in_span[company.index]]
    near = _near_listed_event(company_in_span, events)
    in_coverage = coverage[(coverage["entity"] != market_entity) & _covers_span(coverage, start, end)]
    months = in_coverage["day"].dt.tz_localize(None).dt.to_period("M")
    ticker_months = int(pd.DataFrame({"entity": in_coverage["entity"], "month": months}).drop_duplicates().shape[0])
    return AlertEvaluation(
        events=_event_rows(company, events, coverage, start, end),
        unlisted=company_in_span[~near].reset_index(drop=True),
        market=market.reset_index(drop=True),
        company_alerts=len(company_in_span),
        tickers=int(in_coverage["entity"].nunique()),
        ticker_months=ticker_months,
        evaluate_from=start,
        evaluate_to=end,
    )


def _event_rows(company: pd.DataFrame, events: pd.DataFrame, coverage: pd.DataFrame,
                start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    identity = [column for column in ALERT_IDENTITY if column in company.columns]
    rows: list[dict[str, Any]] = []
    for event in events.itertuples(index=False):
        day = event.event_day
        counted = (start is None or day >= start.floor("D")) and (end is None or day < end)
        window_start = day - DETECTION_BEFORE
        candidates = company[(company["entity"] == event.ticker) & (company["fired_bucket"] >= window_start)
                             & (company["fired_bucket"] < day + DETECTION_AFTER)].sort_values("fired_bucket", kind="stable")
        days = coverage[(coverage["entity"] == event.ticker) & (coverage["day"] >= window_start)]
        first_article = days["first_published_at"].min() if len(days) else pd.NaT
        row: dict[str, Any] = {"ticker": event.ticker, "event_date": day.date(), "counted": bool(counted),
                               "detected": not candidates.empty, "first_article_at": first_article, "delay_hours": float("nan")}
        if not candidates.empty:
            alert = candidates.iloc[0]
            row.update({column: alert[column] for column in identity})
            waited = alert["fired_bucket"] - first_article if pd.notna(first_article) else pd.Timedelta(0)
            row["delay_hours"] = max(0.0, waited / pd.Timedelta(hours=1))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*EVENT_COLUMNS, *identity])
    frame["counted"] = frame["counted"].astype(bool)
    frame["detected"] = frame["detected"].astype(bool)
    frame["first_article_at"] = pd.to_datetime(frame["first_article_at"], utc=True)
    if "fired_bucket" in frame.columns:
        frame["fired_bucket"] = pd.to_datetime(frame["fired_bucket"], utc=True)
    return frame


def _near_listed_event(alerts: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Per alert: is its UTC day within NEAR_EVENT_DAYS days of a listed event of its ticker?"""
    if alerts.empty or events.empty:
        return pd.Series(False, index=alerts.index)
    pairs = alerts[["entity", "fired_bucket"]].reset_index().merge(events, left_on="entity", right_on="ticker")
    apart = (pairs["fired_bucket"].dt.floor("D") - pairs["event_day"]).abs()
    near = set(pairs.loc[apart <= pd.Timedelta(days=NEAR_EVENT_DAYS), "index"])
    return pd.Series(alerts.index.isin(near), index=alerts.index)


def _within(moments: pd.Series, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.Series:
    inside = pd.Series(True, index=moments.index)
    if start is not None:
        inside &= moments >= start
    if end is not None:
        inside &= moments < end
    return inside


def _covers_span(coverage: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.Series:
    """Days with at least one article in [start, end): the last article of the day is not before
    `start` and the first is before `end`."""
    inside = pd.Series(True, index=coverage.index)
    if start is not None:
        inside &= coverage["last_published_at"] >= start
    if end is not None:
        inside &= coverage["first_published_at"] < end
    return inside


def _typed_coverage(coverage: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "entity": coverage["entity"].astype(str),
        "day": _days(coverage["day"]),
        "first_published_at": pd.to_datetime(coverage["first_published_at"], utc=True),
        "last_published_at": pd.to_datetime(coverage["last_published_at"], utc=True),
    })


def _days(values: pd.Series) -> pd.Series:
    """Dates (or anything pandas reads as one) as midnight UTC timestamps."""
    moments = values if pd.api.types.is_datetime64_any_dtype(values) else pd.to_datetime(values.astype(str), format="ISO8601")
    if moments.dt.tz is None:
        moments = moments.dt.tz_localize("UTC")
    return moments.dt.tz_convert("UTC").dt.floor("D")
