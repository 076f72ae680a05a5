"""An alert evaluation (pipeline/alerting/evaluation.py) for people and for programs: the per-event
table and the summary figures as text, the same as one JSON object, and the unlisted alerts with
their top headlines, for `finsent backtest --events` and `bench/alerts_real.py` alike."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from pipeline.alerting.evaluation import ALERT_IDENTITY, NEAR_EVENT_DAYS, AlertEvaluation
from pipeline.safe_text import escape_controls
from pipeline.tabular import clock_text

HEADLINES_SHOWN = 2


def evaluation_text(evaluation: AlertEvaluation, market_entity: str) -> str:
    """The per-event table, then recall, median delay, unlisted alerts per ticker-month and market alerts."""
    events = evaluation.events
    lines = [f"known events ({_span(evaluation)}; * = dated outside it, shown but not counted):"]
    if events.empty:
        lines.append("  (none)")
    else:
        width = max(len(_event_label(row)) for row in events.itertuples()) + 2
        lines.append(f"  {'event':<{width}}{'detected':<10}{'delay h':>8}  alert")
        for row in events.itertuples():
            delay = "-" if math.isnan(row.delay_hours) else f"{row.delay_hours:.1f}"
            lines.append(f"  {_event_label(row):<{width}}{'yes' if row.detected else 'no':<10}{delay:>8}  {_alert_label(row)}")
    lines += ["", *summary_lines(evaluation, market_entity)]
    return "\n".join(lines) + "\n"


def summary_lines(evaluation: AlertEvaluation, market_entity: str) -> list[str]:
    recall = evaluation.recall
    delay = evaluation.median_delay_hours
    rate = evaluation.unlisted_per_ticker_month
    near = evaluation.company_alerts - len(evaluation.unlisted)
    return [
        f"recall: {evaluation.detected_events} of {evaluation.counted_events} events"
        + ("" if recall is None else f" ({100 * recall:.0f}%)") + " alerted in [event day - 1, event day + 2)",
        "median delay: " + ("-" if delay is None else f"{delay:.1f} h")
        + " (from the ticker's first article on or after event day - 1 to the alert's first bucket)",
        f"unlisted alerts: {len(evaluation.unlisted)} of {evaluation.company_alerts} company alerts ({near} within "
        f"{NEAR_EVENT_DAYS} days of a listed event) in {evaluation.ticker_months} ticker-months "
        f"({evaluation.tickers} tickers with news) = " + ("-" if rate is None else f"{rate:.3f}") + " per ticker-month",
        f"market alerts ({escape_controls(market_entity)}): {evaluation.market_alerts}, reported apart",
    ]


def unlisted_text(evaluation: AlertEvaluation, headlines: int = HEADLINES_SHOWN) -> str:
    """Each unlisted alert with its top negative headlines (where the alerts carry `top_negative`),
    so a person can tell a real story that is not on the list from noise."""
    unlisted = evaluation.unlisted.sort_values(["fired_bucket", "entity"], kind="stable")
    lines = [f"unlisted alerts ({len(unlisted)}):"]
    for alert in unlisted.to_dict("records"):
        rule = f" {escape_controls(str(alert['rule']))}" if "rule" in alert else ""
        severity = f" ({escape_controls(str(alert['severity']))})" if "severity" in alert else ""
        lines.append(f"  {escape_controls(str(alert['entity'])):<8} {clock_text(alert['fired_bucket'])}{rule}{severity}")
        evidence = alert.get("top_negative")
        for headline in (evidence if isinstance(evidence, list) else [])[:headlines]:
            score = headline.get("p_negative")
            lines.append(f"      {'' if score is None else f'{score:.2f}  '}{escape_controls(str(headline.get('headline', '')))}")
    return "\n".join(lines) + "\n"


def evaluation_document(evaluation: AlertEvaluation, market_entity: str) -> dict[str, Any]:
    """JSON-ready: every figure of `evaluation_text`, times in ISO 8601 UTC, missing values null."""
    events = []
    for row in evaluation.events.to_dict("records"):
        alert = {column: _plain(row[column]) for column in ALERT_IDENTITY if column in row} if row["detected"] else None
        events.append({
            "ticker": row["ticker"], "event_date": row["event_date"].isoformat(), "counted": bool(row["counted"]),
            "detected": bool(row["detected"]), "first_article_at": _plain(row["first_article_at"]),
            "delay_hours": _plain(row["delay_hours"]), "alert": alert,
        })
    unlisted = [{column: _plain(alert[column]) for column in ("entity", *ALERT_IDENTITY) if column in alert}
                for alert in evaluation.unlisted.to_dict("records")]
    return {
        "evaluate_from": _plain(evaluation.evaluate_from), "evaluate_to": _plain(evaluation.evaluate_to),
        "events": events, "counted_events": evaluation.counted_events, "detected_events": evaluation.detected_events,
        "recall": evaluation.recall, "median_delay_hours": evaluation.median_delay_hours,
        "company_alerts": evaluation.company_alerts, "unlisted_alerts": len(evaluation.unlisted), "unlisted": unlisted,
        "tickers": evaluation.tickers, "ticker_months": evaluation.ticker_months,
        "unlisted_per_ticker_month": evaluation.unlisted_per_ticker_month,
        "market_entity": market_entity, "market_alerts": evaluation.market_alerts,
    }


def _span(evaluation: AlertEvaluation) -> str:
    start, end = evaluation.evaluate_from, evaluation.evaluate_to
    if start is None and end is None:
        return "all counted"
    if end is None:
        return f"counted from {_moment(start)} on"
    if start is None:
        return f"counted before {_moment(end)}"
    return f"counted from {_moment(start)} to {_moment(end)}"


def _moment(moment: pd.Timestamp) -> str:
    """The day alone at midnight (as a day was most likely typed), else day and time."""
    return moment.date().isoformat() if moment == moment.floor("D") else clock_text(moment)


def _event_label(row: Any) -> str:
    return f"{escape_controls(row.ticker)} {row.event_date.isoformat()}{'' if row.counted else ' *'}"


def _alert_label(row: Any) -> str:
    if not row.detected:
        return "-"
    fields = row._asdict()
    rule = f"{escape_controls(str(fields['rule']))} " if "rule" in fields else ""
    severity = f" ({escape_controls(str(fields['severity']))})" if "severity" in fields else ""
    return f"{rule}{clock_text(fields['fired_bucket'])}{severity}"


def _plain(value: Any) -> Any:
    """A cell as JSON: timestamps in ISO 8601 UTC as the alerts list writes them (pandas' form,
    2026-03-02T08:20:00.000Z), numpy numbers as Python ones, NaN and NaT as null."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        moment = value.tz_convert("UTC")
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
    if hasattr(value, "item"):
        return value.item()
    return value
