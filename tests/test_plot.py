"""`finsent plot` on a real PostgreSQL: the PNG it writes, the entities it picks, its one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from sqlalchemy import Engine, insert

from pipeline.cli import main
from pipeline.plotting import SEVERITY_COLOURS, figure_pixels
from storage.models import Alert
from tests.alert_history import WIDTH, bucket, write_history

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
