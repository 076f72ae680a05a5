"""`finsent plot` on a real PostgreSQL: the PNG it writes, the entities it picks, its one-line errors."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from sqlalchemy import Engine, insert, text

from pipeline.cli import main
from pipeline.picture import TARGET_PLOT_BUCKETS, PlotRequest, read_plot
from pipeline.plotting import INDEX_LABEL, SEVERITY_COLOURS, SHARE_LABEL, TIME_LABEL, build_figure, figure_pixels
from storage.models import Alert, Bucket
from storage.queries import filled_series, stored_buckets
from storage.writes import ArticleRecord, EntityMention, write_articles
from tests.support.alert_history import MODEL, WIDTH, bucket, write_history

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
    assert (f"wrote {out}: 3 entities (KO, PFE, AAPL), 1 alerts, 2026-03-02 00:00 to 2026-03-02 05:00 UTC, "
            "drawn at 5m: 60 buckets\n") == captured.out
    image = read_png(out)
    width, height = figure_pixels(3)
    assert image.shape == (height, width, 4)
    assert pixels_of(image, SEVERITY_COLOURS["critical"]) > 50, "the KO alert is marked in the critical colour"


DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "plot.png"


def test_plot_draws_the_emotion_curve_with_alert_spans_and_updates_the_readme_image(
    history: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With FINSENT_UPDATE_DOCS_IMAGES=1 the picture also becomes the README's docs/images/plot.png."""
    out = DOCS_IMAGE if os.environ.get("FINSENT_UPDATE_DOCS_IMAGES") == "1" else tmp_path / "plot.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    code = main(["plot", "--entity", "KO", "--entity", "PFE", "--width", "5m", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "2 entities (KO, PFE), 1 alerts" in captured.out
    image = read_png(out)
    assert image.shape == (figure_pixels(2)[1], figure_pixels(2)[0], 4)
    # the resolved KO alert is a shaded span over buckets 30..33: many faint critical-red pixels
    assert pixels_of(image, SEVERITY_COLOURS["critical"]) > 50


def test_the_figure_of_stored_data_holds_the_index_the_alert_span_and_the_axis_labels(history: Engine) -> None:
    """From the Figure objects (not pixels): the frames read from PostgreSQL are what is drawn."""
    frames = read_plot(history, PlotRequest(width_seconds=WIDTH, market_entity="MARKET", entities=("KO", "PFE")))
    figure = build_figure(frames.panels, frames.alerts, WIDTH, frames.start, frames.end)
    uppers = [ax for ax in figure.axes if ax.get_ylabel() == INDEX_LABEL]
    assert [ax.get_title(loc="left").split(":")[0] for ax in uppers] == ["KO", "PFE"]
    for ax, panel in zip(uppers, frames.panels, strict=True):
        stored = filled_series(history, panel.entity, WIDTH, frames.start, frames.end)["emotion_index"].to_numpy(dtype=float)
        (index,) = [candidate for candidate in ax.get_lines() if candidate.get_gid() == "emotion_index"]
        np.testing.assert_allclose(np.asarray(index.get_ydata(), dtype=float), stored, equal_nan=True)
        assert np.isfinite(stored).sum() > 10, "the stored index is drawn, not an empty curve"
    ko, pfe = uppers
    assert [patch.get_label() for patch in ko.patches if str(patch.get_gid()).startswith("alert-")] == ["negative_spike, critical"]
    assert not [patch for patch in pfe.patches if str(patch.get_gid()).startswith("alert-")]
    assert {ax.get_ylabel() for ax in figure.axes} == {INDEX_LABEL, SHARE_LABEL, "articles"}
    assert [ax.get_xlabel() for ax in figure.axes if ax.get_xlabel()] == [TIME_LABEL]


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
        (["--width", "1h"], "no 1h buckets in the database"),
        (["--from", "2026-03-03", "--to", "2026-03-04"], "no 5m buckets between 2026-03-03T00:00Z and 2026-03-04T00:00Z"),
        (["--from", "2026-03-03", "--to", "2026-03-02"], "must be after --from"),
        (["--from", "yesterday"], "--from 'yesterday' is not a date or time; use ISO 8601"),
        (["--to", "2026-03-02T10:00"], "--to '2026-03-02T10:00' has no time zone; add Z for UTC"),
        (["--since", "soon"], "--since 'soon' is not a duration: use a positive one such as 30m, 6h or 7d"),
        (["--since", "1h", "--from", "2026-03-02"], "--since 1h and --from 2026-03-02 both set the start: give one of them"),
        (["--entity", "NOPE"], "no buckets for NOPE in the window; entities with data there: "),
        (["--out", "{tmp}/missing/plot.png"], "the directory {tmp}/missing does not exist"),
        (["--out", "{tmp}"], "--out {tmp} is a directory"),
        (["--width", "5m", "--from", "0001-01-01", "--to", "9999-12-31"],
         "0001-01-01T00:00Z to 9999-12-31T00:00Z is 1,051,792,704 5m buckets, more than one plot draws (20,000): "
         "choose a shorter window (--since, --from/--to), a wider --width, or no --width to draw at a width picked "
         "from the window"),
        (["--width", "5m", "--since", "99999999d"], "1980-01-01T00:00Z to 2026-03-02T04:55Z is "),
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
    assert "finsent: error: no 5m buckets in the database: run `finsent worker`" in capsys.readouterr().err
    assert not (tmp_path / "plot.png").exists()


def test_plot_on_a_database_never_migrated_is_one_line_not_a_traceback(
    empty_database: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FINSENT_DATABASE_URL", empty_database.url.render_as_string(hide_password=False))
    assert main(["plot", "--out", str(tmp_path / "plot.png")]) == 2
    err = capsys.readouterr().err
    assert "finsent: error: no 5m buckets in the database: run `finsent worker`" in err and "Traceback" not in err


def store_article_dated(engine: Engine, moment: datetime) -> None:
    """An article about PFE dated `moment` and the bucket the worker derives from it."""
    with engine.begin() as connection:
        write_articles(connection, [ArticleRecord("odd-date", moment, "PFE odd date", "", "wire", None, "en",
                                                  (EntityMention("PFE", "tickers"),))])
        connection.execute(insert(Bucket), [{
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


LONG_T0 = datetime(2025, 11, 1, tzinfo=timezone.utc)
LONG_DAYS = 100
FIVE_MINUTE_ROWS = """
    INSERT INTO buckets (entity, width_seconds, bucket_start, model_version, article_count, mean_p_negative,
        mean_p_neutral, mean_p_positive, negative_share, mean_sentiment, emotion_index, decay_sum, decay_weight)
    SELECT e, 300, b, 'm', 1 + k % 4, (k % 10) / 20.0, 0.25, 0.75 - (k % 10) / 20.0, (k % 3 = 0)::int,
           0.75 - (k % 10) / 10.0, sin(k / 500.0), 0, 1
    FROM unnest(CAST(:entities AS text[])) AS e,
         generate_series(CAST(:start AS timestamptz), CAST(:end AS timestamptz) - interval '5 minutes',
                         interval '5 minutes') WITH ORDINALITY AS g(b, k)
"""
HOURLY_ROWS = """
    INSERT INTO buckets (entity, width_seconds, bucket_start, model_version, article_count, mean_p_negative,
        mean_p_neutral, mean_p_positive, negative_share, mean_sentiment, emotion_index, decay_sum, decay_weight)
    SELECT entity, 3600, date_trunc('hour', bucket_start), 'm', sum(article_count),
           sum(mean_p_negative * article_count) / sum(article_count), 0.25,
           sum(mean_p_positive * article_count) / sum(article_count),
           sum(negative_share * article_count) / sum(article_count),
           sum(mean_sentiment * article_count) / sum(article_count),
           (array_agg(emotion_index ORDER BY bucket_start DESC))[1], 0, 1
    FROM buckets WHERE width_seconds = 300 AND bucket_start >= CAST(:hourly_from AS timestamptz)
    GROUP BY entity, date_trunc('hour', bucket_start)
"""


def write_long_history(engine: Engine, entities: list[str], days: int = LONG_DAYS,
                       hourly_from: datetime = LONG_T0) -> None:
    """`days` of 5-minute buckets from LONG_T0, every one with articles, and the 1-hour buckets summed
    from them (from `hourly_from` on), in SQL: months of the worker's output in a second. The newest
    article is a minute before the end."""
    end = LONG_T0 + timedelta(days=days)
    with engine.begin() as connection:
        connection.execute(text(FIVE_MINUTE_ROWS), {"entities": entities, "start": LONG_T0, "end": end})
        connection.execute(text(HOURLY_ROWS), {"hourly_from": hourly_from})
        write_articles(connection, [ArticleRecord("newest", end - timedelta(minutes=1), "newest", "", "wire", None, "en",
                                                  (EntityMention(entities[0], "tickers"),))])


@pytest.fixture
def long_history(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("FINSENT_DATABASE_URL", database_url)
    write_long_history(engine, ["PFE", "AAPL", "KO"])
    return engine


DRAWN = re.compile(r", drawn at (\w+): ([\d,]+) buckets(, summed from the (\w+) buckets)?$", re.M)


def drawn_at(output: str) -> tuple[str, int, str | None]:
    """(width, buckets, stored width summed from or None) from the command's output line."""
    match = DRAWN.search(output)
    assert match is not None, output
    return match.group(1), int(match.group(2).replace(",", "")), match.group(4)


@pytest.mark.parametrize(("arguments", "expected"), [
    ([], ("2h", 1_200, "1h")),
    (["--since", "60d"], ("1h", 1_441, None)),
    (["--since", "5d"], ("5m", 1_440, None)),
    (["--from", "2025-11-01", "--to", "2026-11-01"], ("6h", 1_460, "1h")),
])
def test_plot_of_a_long_history_picks_its_width_from_the_window(
    long_history: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str],
    expected: tuple[str, int, str | None],
) -> None:
    """The finest stored width with at most TARGET_PLOT_BUCKETS buckets, else a coarser one summed
    from the widest stored width (1h)."""
    out = tmp_path / "long.png"
    code = main(["plot", "--out", str(out), *arguments])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert drawn_at(captured.out) == expected
    assert expected[1] <= TARGET_PLOT_BUCKETS
    assert read_png(out).shape == (figure_pixels(3)[1], figure_pixels(3)[0], 4)


def test_plot_over_the_whole_calendar_draws_few_wide_buckets(
    long_history: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "calendar.png"
    code = main(["plot", "--entity", "PFE", "--from", "0001-01-01", "--to", "9999-12-31", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    width, buckets, summed = drawn_at(captured.out)
    assert width.endswith("d") and summed == "1h" and 0 < buckets <= TARGET_PLOT_BUCKETS
    assert "1 entities (PFE), 0 alerts" in captured.out


def test_plot_sums_from_the_finest_width_when_a_wider_one_lacks_the_old_buckets(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """1h added to FINSENT_BUCKET_WIDTHS late: its buckets cover the last 10 days only, so the 100
    days are summed from the 5m buckets, not drawn mostly empty."""
    monkeypatch.setenv("FINSENT_DATABASE_URL", database_url)
    write_long_history(engine, ["PFE"], hourly_from=LONG_T0 + timedelta(days=LONG_DAYS - 10))
    code = main(["plot", "--out", str(tmp_path / "plot.png")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert drawn_at(captured.out) == ("2h", 1_200, "5m")
    assert "1 entities (PFE)" in captured.out


def test_an_explicit_width_keeps_the_cap_on_a_long_history(
    long_history: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plot", "--width", "5m", "--out", str(tmp_path / "plot.png")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("finsent: error: 2025-11-01T00:00Z to 2026-02-09T00:00Z is 28,800 5m buckets, more than one "
                            "plot draws (20,000)"), error
    assert list(tmp_path.glob("*.png")) == []


def write_sparse_rows(engine: Engine, rng: np.random.Generator) -> None:
    """5m buckets of PFE on half of a day but none from 10:00 to 14:00, with any counts and means."""
    rows = []
    for k in sorted(rng.choice([k for k in range(288) if not 120 <= k < 168], size=120, replace=False)):
        p_negative, p_positive = rng.uniform(0, 0.5, size=2)
        rows.append({
            "entity": "PFE", "width_seconds": WIDTH, "bucket_start": LONG_T0 + timedelta(minutes=5 * int(k)),
            "model_version": MODEL, "article_count": int(rng.integers(1, 9)), "mean_p_negative": p_negative,
            "mean_p_neutral": 1 - p_negative - p_positive, "mean_p_positive": p_positive,
            "negative_share": float(rng.uniform()), "mean_sentiment": p_positive - p_negative,
            "emotion_index": float(rng.uniform(-1, 1)), "decay_sum": 0.0, "decay_weight": 1.0,
        })
    with engine.begin() as connection:
        connection.execute(insert(Bucket), rows)


def summed_in_pandas(rows: pd.DataFrame, width: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The definition, bucket by bucket: counts add up, means weigh by article_count, the index is
    the bin's last stored one, carried across empty bins from the last before `start`."""
    before = rows[rows["bucket_start"] < start]
    rows = rows[rows["bucket_start"] >= start].assign(bin=lambda f: f["bucket_start"].dt.floor(width))
    bins = rows.groupby("bin")
    frame = pd.DataFrame({"article_count": bins["article_count"].sum()})
    for column in ("mean_p_negative", "mean_p_neutral", "mean_p_positive", "negative_share", "mean_sentiment"):
        frame[column] = (rows[column] * rows["article_count"]).groupby(rows["bin"]).sum() / frame["article_count"]
    frame["emotion_index"] = bins["emotion_index"].last()
    frame["model_version"] = bins["model_version"].last()
    grid = pd.date_range(start, end, freq=width, inclusive="left", name="bucket_start").as_unit("us")
    frame = frame.reindex(grid)
    frame["article_count"] = frame["article_count"].fillna(0).astype("int64")
    for column in ("emotion_index", "model_version"):
        frame[column] = frame[column].ffill().fillna(before[column].iloc[-1] if len(before) else np.nan)
    return frame.reset_index()


@pytest.mark.parametrize("width_seconds", [3600, 7200, 21_600])
def test_summed_buckets_equal_the_pandas_definition(engine: Engine, width_seconds: int) -> None:
    """Empty hours (10:00 to 14:00) carry the index; the one before 06:00 seeds it."""
    write_sparse_rows(engine, np.random.default_rng(width_seconds))
    start, end = LONG_T0 + timedelta(hours=6), LONG_T0 + timedelta(days=1)
    summed = filled_series(engine, "PFE", width_seconds, start, end, stored_width_seconds=WIDTH)
    rows = stored_buckets(engine, "PFE", WIDTH, LONG_T0, end)
    expected = summed_in_pandas(rows, f"{width_seconds}s", start, end)
    pd.testing.assert_frame_equal(summed, expected[summed.columns], check_dtype=False, check_freq=False)
    assert summed["article_count"].sum() == rows[rows["bucket_start"] >= start]["article_count"].sum()
