"""`finsent backtest --events`: alerts scored against known events, through the CLI on a real database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from pipeline.cli import main
from storage.models import ArticleEntity
from tests.support.alert_history import T0, bucket, write_history

SPAN = ["--from", bucket(48).isoformat(), "--to", bucket(130).isoformat()]
"""04:00 to 10:50 on T0's day; the PFE burst (and its alert) is at bucket 100, 08:20."""


def first_article(engine: Engine, entity: str, since: datetime) -> datetime:
    with engine.connect() as connection:
        return connection.execute(select(func.min(ArticleEntity.published_at)).where(
            ArticleEntity.entity == entity, ArticleEntity.published_at >= since)).scalar_one()


def tickers_with_news(engine: Engine, start: datetime, end: datetime) -> int:
    """Entities but the market one with an article in [start, end): all in one month here, so the ticker-months."""
    with engine.connect() as connection:
        return connection.execute(select(func.count(func.distinct(ArticleEntity.entity))).where(
            ArticleEntity.entity != "MARKET", ArticleEntity.published_at >= start, ArticleEntity.published_at < end)).scalar_one()


@pytest.fixture
def history(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("FINSENT_DATABASE_URL", database_url)
    write_history(engine, ["PFE", "AAPL", "XOM"], 130, burst_entity="PFE", burst_at=100)
    return engine


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.csv"
    path.write_text("ticker,event_date,what\npfe,2026-03-02,the burst\nXOM,2026-03-02,missed\nAAPL,2026-02-20,before the span\n",
                    encoding="utf-8")
    return path


def backtest_json(capsys: pytest.CaptureFixture[str], *arguments: str) -> dict[str, Any]:
    code = main(["backtest", *SPAN, "--format", "json", *arguments])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def pfe_alert(document: dict[str, Any]) -> dict[str, Any]:
    """The alert the PFE burst raised (whichever rule the detection core names it by)."""
    alerts = [alert for alert in document["alerts"] if alert["entity"] == "PFE"]
    assert alerts, f"the PFE burst raised no alert: {document['alerts']}"
    return alerts[0]


def fired(alert: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(alert["fired_bucket"])


def expected_delay(engine: Engine, alert: dict[str, Any]) -> float:
    """From PFE's first article on or after the event day - 1 to the alert's first bucket, in hours (0 if before)."""
    return max(0.0, (fired(alert) - first_article(engine, "PFE", T0 - timedelta(days=1))) / timedelta(hours=1))


def test_the_table_lists_the_alerts_then_each_event_recall_delay_and_noise(
    history: Engine, events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alert = pfe_alert(backtest_json(capsys, "--events", str(events_file)))
    assert main(["backtest", *SPAN, "--events", str(events_file)]) == 0
    out = capsys.readouterr().out
    listing, evaluation = out.split("\nknown events", 1)
    assert "PFE" in listing and alert["rule"] in listing, "the usual alerts listing comes first"
    lines = [" ".join(line.split()) for line in evaluation.splitlines()]
    first_bucket = alert["fired_bucket"][:16].replace("T", " ")
    assert f"PFE 2026-03-02 yes {expected_delay(history, alert):.1f} {alert['rule']} {first_bucket} ({alert['severity']})" in lines
    assert "XOM 2026-03-02 no - -" in lines
    assert "AAPL 2026-02-20 * no - -" in lines, "an event before the span is shown, marked, not counted"
    assert any(line.startswith("recall: 1 of 2 events (50%)") for line in lines)
    assert any(line.startswith(f"median delay: {expected_delay(history, alert):.1f} h") for line in lines)
    tickers = tickers_with_news(history, bucket(48), bucket(130))
    assert any(line.startswith("unlisted alerts: ") and f" in {tickers} ticker-months ({tickers} tickers with news) = " in line
               for line in lines)
    assert any(line.startswith("market alerts (MARKET): ") for line in lines)


def test_json_holds_the_alerts_and_the_evaluation_in_one_document(
    history: Engine, events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = backtest_json(capsys, "--events", str(events_file))
    alert = pfe_alert(document)
    evaluation = document["evaluation"]
    by_ticker = {event["ticker"]: event for event in evaluation["events"]}
    assert by_ticker["PFE"]["detected"] and by_ticker["PFE"]["counted"]
    assert by_ticker["PFE"]["delay_hours"] == pytest.approx(expected_delay(history, alert))
    assert datetime.fromisoformat(by_ticker["PFE"]["first_article_at"]) == first_article(history, "PFE", T0 - timedelta(days=1))
    assert by_ticker["PFE"]["alert"]["fired_bucket"] == alert["fired_bucket"]
    assert by_ticker["PFE"]["alert"]["rule"] == alert["rule"]
    assert by_ticker["XOM"]["counted"] and not by_ticker["XOM"]["detected"]
    assert by_ticker["XOM"]["alert"] is None and by_ticker["XOM"]["delay_hours"] is None
    assert by_ticker["AAPL"]["event_date"] == "2026-02-20" and not by_ticker["AAPL"]["counted"]
    assert (evaluation["counted_events"], evaluation["detected_events"], evaluation["recall"]) == (2, 1, 0.5)
    assert evaluation["median_delay_hours"] == pytest.approx(expected_delay(history, alert))
    assert "PFE" not in [unlisted["entity"] for unlisted in evaluation["unlisted"]], "the PFE alert is the event's"
    tickers = tickers_with_news(history, bucket(48), bucket(130))
    assert evaluation["ticker_months"] == tickers == 3
    assert evaluation["unlisted_per_ticker_month"] == pytest.approx(evaluation["unlisted_alerts"] / tickers)
    market = [a for a in document["alerts"] if a["entity"] == "MARKET"]
    assert (evaluation["market_entity"], evaluation["market_alerts"]) == ("MARKET", len(market))
    assert evaluation["company_alerts"] == len(document["alerts"]) - len(market)
    assert evaluation["evaluate_from"].startswith(bucket(48).isoformat()[:19])


def test_an_alert_far_from_every_listed_event_is_unlisted_per_ticker_month_from_evaluate_from_on(
    history: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.csv"
    events.write_text("ticker,event_date\nXOM,2026-03-02\nPFE,2026-03-20\n", encoding="utf-8")
    document = backtest_json(capsys, "--events", str(events))
    alert = pfe_alert(document)
    evaluation = document["evaluation"]
    unlisted = [(u["entity"], u["rule"], u["fired_bucket"]) for u in evaluation["unlisted"]]
    assert ("PFE", alert["rule"], alert["fired_bucket"]) in unlisted, "PFE's only listed event is 18 days later"
    tickers = tickers_with_news(history, bucket(48), bucket(130))
    assert evaluation["unlisted_per_ticker_month"] == pytest.approx(len(unlisted) / tickers)
    assert (evaluation["counted_events"], evaluation["detected_events"]) == (1, 0), "PFE 2026-03-20 is after --to"

    later = fired(alert) + timedelta(minutes=5)
    evaluation = backtest_json(capsys, "--events", str(events), "--evaluate-from", later.isoformat())["evaluation"]
    assert "PFE" not in [u["entity"] for u in evaluation["unlisted"]], "an alert before --evaluate-from is not counted"
    assert evaluation["ticker_months"] == tickers_with_news(history, later, bucket(130))
    assert evaluation["evaluate_from"].startswith(later.isoformat()[:19])


def test_with_entity_only_its_events_and_ticker_months_count(
    history: Engine, events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluation = backtest_json(capsys, "--events", str(events_file), "--entity", "PFE")["evaluation"]
    assert [event["ticker"] for event in evaluation["events"]] == ["PFE"]
    assert (evaluation["counted_events"], evaluation["detected_events"], evaluation["ticker_months"]) == (1, 1, 1)


def test_with_out_the_alerts_go_to_the_file_and_the_evaluation_to_stdout(
    history: Engine, events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "alerts.json"
    document = backtest_json(capsys, "--events", str(events_file), "--out", str(out))
    assert list(document) == ["evaluation"] and document["evaluation"]["detected_events"] == 1
    assert "PFE" in [alert["entity"] for alert in json.loads(out.read_text())]

    csv_out = tmp_path / "alerts.csv"
    assert main(["backtest", *SPAN, "--format", "csv", "--out", str(csv_out), "--events", str(events_file)]) == 0
    assert capsys.readouterr().out.startswith("known events")
    assert csv_out.read_text().startswith("entity,rule,")


def test_without_events_the_json_output_is_the_alerts_list_as_before(history: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", *SPAN, "--format", "json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


@pytest.mark.parametrize(("content", "arguments", "message"), [
    (None, [], "--events {path}: not found; give a CSV file with the columns ticker,event_date"),
    ("ticker,date\nPFE,2026-03-02\n", [], "--events {path}: no column event_date in its header ticker,date"),
    ("ticker,event_date\nPFE,03/02/2026\n", [], "--events {path} line 2: event_date '03/02/2026' is not a date; write it as YYYY-MM-DD"),
    ("ticker,event_date\n,2026-03-02\n", [], "--events {path} line 2: empty ticker"),
    ("ticker,event_date\n", ["--format", "csv"], "--format csv with --events would mix the alerts and the evaluation"),
    ("ticker,event_date\n", ["--evaluate-from", "2026-04-01"], "--evaluate-from 2026-04-01T00:00:00Z is outside the backtest"),
])
def test_bad_events_input_is_one_line_and_exit_2(history: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   content: str | None, arguments: list[str], message: str) -> None:
    path = tmp_path / "events.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["backtest", *SPAN, "--events", str(path), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("finsent: error: ") and message.format(path=path) in error and "\n" not in error


def test_evaluate_from_needs_events(history: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", *SPAN, "--evaluate-from", bucket(60).isoformat()]) == 2
    assert capsys.readouterr().err.strip() == (
        "finsent: error: --evaluate-from bounds the scoring of --events: add --events FILE.csv, or drop --evaluate-from")
