"""The alert commands on a real database: backtest, alerts, ack, silence, and their errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from pipeline.alerting.backtest import ALERT_COLUMNS
from pipeline.cli import main
from storage.models import Alert, Delivery, Silence
from storage.writes import ArticleRecord, EntityMention, write_articles
from tests.support.alert_history import bucket, write_history


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
    assert [(a["entity"], a["rule"], a["fired_bucket"][:19]) for a in alerts] == [("PFE", "negative_news", bucket(100).isoformat()[:19])]
    assert alerts[0]["top_negative"][0]["id"] == "PFE-neg-0"
    assert "backtest" in captured.err and "1 alerts would have fired" in captured.err
    with Session(history) as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 0


def test_backtest_rule_parameters_change_the_outcome(history: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--from", bucket(48).isoformat(), "--to", bucket(130).isoformat(), "--format", "csv",
                 "--alert-min-stories", "20"]) == 0
    assert capsys.readouterr().out.strip() == ",".join(ALERT_COLUMNS)
    assert main(["backtest", "--from", bucket(48).isoformat(), "--to", bucket(130).isoformat(), "--format", "csv",
                 "--alert-false-alarms-per-year", "1e-12"]) == 0
    assert capsys.readouterr().out.strip() == ",".join(ALERT_COLUMNS), "a budget that small silences the burst"


def test_backtest_write_then_list_ack_and_silence(history: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--from", bucket(48).isoformat(), "--to", bucket(130).isoformat(), "--write"]) == 0
    assert "stored 1 new alerts" in capsys.readouterr().err
    with Session(history) as session:
        alert_id = session.scalar(select(Alert.id))
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0, "a backtest never notifies"

    assert main(["alerts", "--entity", "PFE", "--format", "csv"]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("id,entity,rule") and f"\n{alert_id},PFE,negative_news," in listed
    # --since counts back from the newest article (bucket 129), not from today's wall clock.
    assert main(["alerts", "--since", "3h", "--format", "csv"]) == 0
    assert f"\n{alert_id},PFE,negative_news," in capsys.readouterr().out, "the burst (bucket 100) is 2h25m before the end"
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
    (["backtest", "--from", "2026-03-01", "--to", "2026-03-02", "--alert-min-stories", "-1"],
     "--alert-min-stories '-1' is invalid"),
    (["backtest", "--from", "2026-03-01", "--to", "2026-03-02", "--width", "7m"],
     "--width 7m is not a stored bucket width: choose one of 5m, 1h"),
    (["silence", "PFE", "--for", "99999999d"], "--for 99999999d is longer than FINSENT_SILENCE_MAX=30d"),
    (["silence", "PFE", "--for", "31d"], "--for 31d is longer than FINSENT_SILENCE_MAX=30d"),
    (["silence", "--for", "1h"], "name the entity or glob to silence"),
    (["silence", "PFE", "--all", "--for", "1h"], "--all silences every entity; drop 'PFE'"),
])
def test_user_mistakes_get_one_line_and_exit_2(history: Engine, capsys: pytest.CaptureFixture[str], arguments: list[str],
                                               message: str) -> None:
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("finsent: error:") and message in error and "Traceback" not in error
    with Session(history) as session:
        assert session.scalar(select(func.count()).select_from(Silence)) == 0, "a refused silence is not stored"


def write_mentions(engine: Engine, entities: list[str]) -> None:
    with engine.begin() as connection:
        write_articles(connection, [
            ArticleRecord(f"story-{i}", datetime(2026, 3, 2, tzinfo=timezone.utc), f"story {i}", "", "wire", None, "en",
                          (EntityMention(entity, "tickers"),))
            for i, entity in enumerate(entities)
        ])


def test_silence_says_which_known_entities_it_matches(history: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    write_mentions(history, ["BANKA", "BANKB", "BANK\x1b]0;OWNED\x07", "PFE"])
    assert main(["silence", "bank*", "--for", "2h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("silenced BANK* until ")
    assert "it matches 3 known entities: " in out
    assert {"BANKA", "BANKB", "BANK\\x1b]0;OWNED\\x07"} <= set(out.splitlines()[1].split(": ", 1)[1].split(", "))
    assert "\x1b" not in out and "\x07" not in out, "entity names from the news reach the terminal escaped"

    assert main(["silence", "PFZER", "--for", "2h"]) == 0
    assert "it matches no entity in the database yet (check the spelling" in capsys.readouterr().out


@pytest.mark.parametrize("glob", ["*", "**", "?*", "*?*"])
def test_a_glob_that_matches_every_entity_needs_all(history: Engine, capsys: pytest.CaptureFixture[str], glob: str) -> None:
    assert main(["silence", glob, "--for", "1h"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"finsent: error: {glob!r} matches every entity and would mute all notifications: add --all if that is meant"
    assert main(["silence", glob, "--all", "--for", "1h", "--reason", "maintenance"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"silenced every entity ({glob}) until ") and "it matches 4 known entities: AAPL, MARKET, PFE, XOM" in out
    with Session(history) as session:
        assert session.execute(select(Silence.entity_glob, Silence.reason)).one() == (glob, "maintenance")


def test_silence_all_without_a_glob_and_the_duration_cap(
    history: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["silence", "--all", "--for", "30d"]) == 0, "the cap itself is allowed"
    assert capsys.readouterr().out.startswith("silenced every entity (*) until ")
    monkeypatch.setenv("FINSENT_SILENCE_MAX", "99999999d")
    assert main(["silence", "PFE", "--for", "99999999d"]) == 2
    assert capsys.readouterr().err.strip() == ("finsent: error: --for 99999999d ends after the year 9999: silence for less "
                                              "(and lower FINSENT_SILENCE_MAX=99999999d)")
    monkeypatch.setenv("FINSENT_SILENCE_MAX", "400d")
    assert main(["silence", "PFE", "--for", "365d"]) == 0
    with Session(history) as session:
        ends = dict(session.execute(select(Silence.entity_glob, Silence.ends_at)).all())
    now = datetime.now(timezone.utc)
    assert set(ends) == {"*", "PFE"}
    assert timedelta(days=29) < ends["*"] - now <= timedelta(days=30)
    assert timedelta(days=364) < ends["PFE"] - now <= timedelta(days=365)


def test_alerts_since_longer_than_the_calendar_lists_everything(history: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--from", bucket(48).isoformat(), "--to", bucket(130).isoformat(), "--write"]) == 0
    capsys.readouterr()
    assert main(["alerts", "--since", "99999999d", "--format", "csv"]) == 0
    assert ",PFE,negative_news," in capsys.readouterr().out
