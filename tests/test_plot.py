"""`finsent plot` on a real PostgreSQL: the PNG it writes, the entities it picks, its one-line errors."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from sqlalchemy import Engine, insert

from pipeline.cli import main
from pipeline.plotting import SEVERITY_COLOURS, figure_pixels
from storage.models import Alert, Timestep
from storage.writes import ArticleRecord, EntityMention, write_articles
from tests.alert_history import MODEL, WIDTH, bucket, write_history

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.integration


@pytest.fixture
def history(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """60 buckets for four tickers and MARKET; PFE has a burst (the most articles), KO a critical alert."""
    monkeypatch.setenv("FINSENT_DATABASE_URL", database_url)
    write_history(engine, ["PFE", "AAPL", "XOM", "KO"], 60, burst_entity="PFE", burst_at=40)
    fingerprint = f"KO/negative_spike/{WIDTH}s"
    with engine.begin() as connection:
        connection.execute(insert(Alert), [{
            "dedup_key": f"{fingerprint}@{bucket(30).isoformat()}", "fingerprint": fingerprint, "entity": "KO",
            "rule": "negative_spike", "width_seconds": WIDTH, "bucket_start": bucket(30), "value": 0.8, "baseline": 0.1,
            "severity": "critical", "state": "resolved", "evidence": {}, "last_bucket_start": bucket(33),
        }])
    return engine


def read_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return imread(path)


def pixels_of(image: np.ndarray, colour: str) -> int:
    """How many pixels are (nearly) this colour: the alert markers are the only critical-red things drawn."""
    target = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(image[..., :3] - target) < 0.05).all(axis=-1).sum())


def test_plot_picks_alerted_entities_first_then_the_most_active_never_market(
    history: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plot.png"
    code = main(["plot", "--out", str(out), "--top", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"wrote {out}: 3 entities (KO, PFE, AAPL), 1 alerts, 2026-03-02 00:00 to 2026-03-02 05:00 UTC" in captured.out
    image = read_png(out)
    width, height = figure_pixels(3)
    assert image.shape == (height, width, 4)
    assert pixels_of(image, SEVERITY_COLOURS["critical"]) > 50, "the KO alert is marked in the critical colour"


def test_plot_named_entities_and_a_fixed_window(history: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "two.png"
    code = main(["plot", "--entity", "pfe", "--entity", "MARKET", "--width", "5m", "--from", bucket(10).isoformat(),
                 "--to", bucket(50).isoformat(), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "2 entities (PFE, MARKET), 0 alerts, 2026-03-02 00:50 to 2026-03-02 04:10 UTC" in captured.out
    image = read_png(out)
    width, height = figure_pixels(2)
    assert image.shape == (height, width, 4)
    assert pixels_of(image, SEVERITY_COLOURS["critical"]) == 0, "no alert of PFE or MARKET to mark"


def test_plot_since_is_the_last_span_of_news_not_of_wall_clock(
    history: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The history ends on 2026-03-02 (the newest article at 04:55:01): --since 1h is its last hour."""
    out = tmp_path / "last-hour.png"
    code = main(["plot", "--entity", "PFE", "--since", "1h", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "1 entities (PFE), 0 alerts, 2026-03-02 03:55 to 2026-03-02 04:55 UTC" in captured.out


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--width", "2m"], "--width 2m is not a stored bucket width: choose one of 5m, 1h"),
        (["--width", "soon"], "--width 'soon' is not a duration"),
        (["--width", "1h"], "no 1h timesteps in the database"),
        (["--from", "2026-03-03", "--to", "2026-03-04"], "no 5m timesteps between 2026-03-03T00:00Z and 2026-03-04T00:00Z"),
        (["--from", "2026-03-03", "--to", "2026-03-02"], "must be after --from"),
        (["--from", "yesterday"], "--from 'yesterday' is not a date or time; use ISO 8601"),
        (["--to", "2026-03-02T10:00"], "--to '2026-03-02T10:00' has no time zone; add Z for UTC"),
        (["--since", "soon"], "--since 'soon': expected a positive duration"),
        (["--since", "1h", "--to", "2026-03-02"], "--to goes with --from, not with --since"),
        (["--entity", "NOPE"], "no timesteps for NOPE in the window; entities with data there: "),
        (["--out", "{tmp}/missing/plot.png"], "the directory {tmp}/missing does not exist"),
        (["--out", "{tmp}"], "--out {tmp} is a directory"),
        (["--from", "0001-01-01", "--to", "9999-12-31"],
         "0001-01-01T00:00Z to 9999-12-31T00:00Z is 1,051,792,704 5m buckets, more than one plot draws (20,000): "
         "choose a shorter window (--since, --from/--to) or a wider --width"),
        (["--since", "99999999d"], "1980-01-01T00:00Z to 2026-03-02T04:55Z is "),
    ],
)
def test_plot_mistakes_are_one_line_errors(
    history: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], expected: str
) -> None:
    code = main(["plot", *(argument.format(tmp=tmp_path) for argument in arguments)]
                + ([] if "--out" in arguments else ["--out", str(tmp_path / "plot.png")]))
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert lines[-1].startswith("finsent: error: ") and expected.format(tmp=tmp_path) in lines[-1], captured.err
    assert "Traceback" not in captured.err
    assert list(tmp_path.glob("**/*.png")) == []


def test_plot_on_an_empty_database_says_to_score_news_first(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FINSENT_DATABASE_URL", database_url)
    assert main(["plot", "--out", str(tmp_path / "plot.png")]) == 2
    assert "finsent: error: no 5m timesteps in the database: run `finsent worker`" in capsys.readouterr().err
    assert not (tmp_path / "plot.png").exists()


def test_plot_on_a_database_never_migrated_is_one_line_not_a_traceback(
    empty_database: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FINSENT_DATABASE_URL", empty_database.url.render_as_string(hide_password=False))
    assert main(["plot", "--out", str(tmp_path / "plot.png")]) == 2
    err = capsys.readouterr().err
    assert "finsent: error: no 5m timesteps in the database: run `finsent worker`" in err and "Traceback" not in err


def store_article_dated(engine: Engine, moment: datetime) -> None:
    """An article about PFE dated `moment` and the bucket the worker derives from it."""
    with engine.begin() as connection:
        write_articles(connection, [ArticleRecord("odd-date", moment, "PFE odd date", "", "wire", None, "en",
                                                  (EntityMention("PFE", "tickers"),))])
        connection.execute(insert(Timestep), [{
            "entity": "PFE", "width_seconds": WIDTH, "bucket_start": moment, "model_version": MODEL, "article_count": 1,
            "mean_p_negative": 0.8, "mean_p_neutral": 0.1, "mean_p_positive": 0.1, "negative_share": 1.0,
            "mean_sentiment": -0.7, "emotion_index": -0.7, "decay_sum": -0.7, "decay_weight": 1.0,
        }])


@pytest.mark.parametrize(("moment", "named"), [
    (datetime(9999, 12, 31, 23, 55, tzinfo=timezone.utc), "the latest at 9999-12-31T23:55Z"),
    (datetime(1, 1, 1, tzinfo=timezone.utc), "the earliest at 0001-01-01T00:00Z"),
])
def test_plot_leaves_out_a_bucket_dated_where_no_news_can_be(
    history: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], moment: datetime, named: str
) -> None:
    """One article stored as dated 9999 or 0001 (before the worker checked dates) must not stretch
    the default window over millennia (an OverflowError or a grid of billions of buckets)."""
    store_article_dated(history, moment)
    out = tmp_path / "plot.png"
    code = main(["plot", "--out", str(out), "--top", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "2026-03-02 00:00 to 2026-03-02 05:00 UTC" in captured.out
    note = captured.err.strip().splitlines()[-1]
    assert note.startswith("note: left out 1 stored 5m bucket dated outside 1980-01-01T00:00Z to ") and named in note
    assert read_png(out).shape == (figure_pixels(2)[1], figure_pixels(2)[0], 4)


def test_plot_draws_the_last_day_of_the_calendar_when_asked(
    history: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_article_dated(history, datetime(9999, 12, 31, 23, 55, tzinfo=timezone.utc))
    out = tmp_path / "far.png"
    code = main(["plot", "--entity", "PFE", "--from", "9999-12-31T12:00Z", "--to", "9999-12-31T23:59Z", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "1 entities (PFE), 0 alerts, 9999-12-31 12:00 to 9999-12-31 23:59 UTC" in captured.out
    assert read_png(out).shape == (figure_pixels(1)[1], figure_pixels(1)[0], 4)
