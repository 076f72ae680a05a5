"""The alert commands on a real database: backtest, alerts, ack, silence, and their errors."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from pipeline.cli import main
from storage.models import Alert, Delivery, Silence
from tests.alert_history import bucket, write_history


@pytest.fixture
def history(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("FINSENT_DATABASE_URL", database_url)
    write_history(engine, ["PFE", "AAPL", "XOM"], 130, burst_entity="PFE", burst_at=100)
    return engine


def test_backtest_prints_the_alerts_that_would_have_fired_without_writing(history: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backtest", "--from", bucket(48).isoformat(), "--to", bucket(130).isoformat(), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    alerts = json.loads(captured.out)
    assert [(a["entity"], a["rule"], a["fired_bucket"][:19]) for a in alerts] == [("PFE", "negative_spike", bucket(100).isoformat()[:19])]
    assert alerts[0]["top_negative"][0]["id"] == "PFE-neg-0"
    assert "backtest" in captured.err and "1 alerts would have fired" in captured.err
    with Session(history) as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 0


def test_backtest_rule_parameters_change_the_outcome(history: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--from", bucket(48).isoformat(), "--to", bucket(130).isoformat(), "--format", "csv",
                 "--spike-min-articles", "11"]) == 0
    assert capsys.readouterr().out.strip() == ",".join(
        ["entity", "rule", "width_seconds", "fired_bucket", "severity", "max_severity", "value", "baseline", "z_score",
         "article_count", "baseline_source", "escalations", "repeats", "resolved_at", "top_negative"])


def test_backtest_write_then_list_ack_and_silence(history: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--from", bucket(48).isoformat(), "--to", bucket(130).isoformat(), "--write"]) == 0
    assert "stored 1 new alerts" in capsys.readouterr().err
    with Session(history) as session:
        alert_id = session.scalar(select(Alert.id))
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0, "a backtest never notifies"

    assert main(["alerts", "--entity", "PFE", "--format", "csv"]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("id,entity,rule") and f"\n{alert_id},PFE,negative_spike," in listed
    # --since counts back from the newest article (bucket 129), not from today's wall clock.
    assert main(["alerts", "--since", "3h", "--format", "csv"]) == 0
    assert f"\n{alert_id},PFE,negative_spike," in capsys.readouterr().out, "the burst (bucket 100) is 2h25m before the end"
    assert main(["alerts", "--since", "2h", "--format", "csv"]) == 0
    assert f"\n{alert_id}," not in capsys.readouterr().out

    assert main(["ack", str(alert_id)]) == 0
    assert f"acknowledged alert {alert_id}" in capsys.readouterr().out
    assert main(["silence", "pfe", "--for", "2h", "--reason", "known recall story"]) == 0
    assert "silenced PFE until" in capsys.readouterr().out
    with Session(history) as session:
        assert session.scalar(select(Alert.acked_at).where(Alert.id == alert_id)) is not None
        assert session.execute(select(Silence.entity_glob, Silence.reason)).one() == ("PFE", "known recall story")


@pytest.mark.parametrize(("arguments", "message"), [
    (["ack", "987654"], "no alert with id 987654"),
    (["backtest", "--from", "2026-03-02", "--to", "2026-03-01"], "must be after --from"),
    (["backtest", "--from", "2026-03-01", "--to", "2026-03-02", "--spike-z", "-1"], "--spike-z '-1' is invalid"),
    (["backtest", "--from", "2026-03-01", "--to", "2026-03-02", "--width", "7m"], "--width 420s is not a stored bucket width"),
])
def test_user_mistakes_get_one_line_and_exit_2(history: Engine, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str) -> None:
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("finsent: error:") and message in error and "Traceback" not in error
