"""The `finsent plot` figure from frames alone: the emotion index is the main curve, mean sentiment
faint points, negative share a lower panel, volume bars, one labelled span per alert (fired ->
resolved, to the end while firing), axis labels and a legend. Checked on matplotlib's objects."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from pipeline.plotting import (
    INDEX_LABEL,
    SEVERITY_COLOURS,
    SHARE_LABEL,
    TIME_LABEL,
    EntityPanel,
    alert_span,
    build_figure,
    figure_pixels,
)

WIDTH = 300
START = datetime(2026, 3, 2, tzinfo=timezone.utc)
BUCKETS = 24
END = START + BUCKETS * timedelta(seconds=WIDTH)


def series(seed: int) -> pd.DataFrame:
    """A filled_series-like grid with two empty buckets (NaN means, index carried forward)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 9, BUCKETS)
    counts[[5, 6]] = 0
    sentiment = rng.uniform(-1, 1, BUCKETS)
    share = rng.uniform(0, 1, BUCKETS)
    sentiment[[5, 6]] = share[[5, 6]] = np.nan
    index = np.clip(np.cumsum(rng.normal(0, 0.1, BUCKETS)), -1, 1)
    index[[5, 6]] = index[4]
    return pd.DataFrame({
        "bucket_start": pd.date_range(START, periods=BUCKETS, freq=f"{WIDTH}s"),
        "article_count": counts, "mean_sentiment": sentiment, "negative_share": share, "emotion_index": index,
    })


def alert(id_: int, entity: str, state: str, first: int, last: int, severity: str, rule: str = "adverse_stories",
          width: int = WIDTH) -> dict[str, object]:
    return {"id": id_, "entity": entity, "rule": rule, "width_seconds": width, "severity": severity, "state": state,
            "bucket_start": pd.Timestamp(START + first * timedelta(seconds=WIDTH)),
            "last_bucket_start": pd.Timestamp(START + last * timedelta(seconds=WIDTH))}


PANELS = [EntityPanel("PFE", series(1)), EntityPanel("KO", series(2))]
ALERTS = pd.DataFrame([
    alert(1, "PFE", "resolved", 3, 8, "critical"),
    alert(2, "PFE", "firing", 18, 20, "warning", rule="negative_spike", width=3600),
    alert(3, "KO", "resolved", 10, 12, "major"),
    alert(4, "XOM", "firing", 2, 2, "critical"),  # not plotted: no panel
])


@pytest.fixture(scope="module")
def figure() -> Figure:
    return build_figure(PANELS, ALERTS, WIDTH, START, END)


def upper_axes(figure: Figure) -> list[Axes]:
    return [ax for ax in figure.axes if ax.get_ylabel() == INDEX_LABEL]


def line(ax: Axes, gid: str) -> Line2D:
    (found,) = [candidate for candidate in ax.get_lines() if candidate.get_gid() == gid]
    return found


def spans(ax: Axes) -> list[Rectangle]:
    return [patch for patch in ax.patches if str(patch.get_gid()).startswith("alert-")]


def test_the_figure_has_its_fixed_size_and_two_axes_per_entity_over_one_time_axis(figure: Figure) -> None:
    width, height = figure_pixels(2)
    assert (figure.get_figwidth() * figure.dpi, figure.get_figheight() * figure.dpi) == pytest.approx((width, height))
    uppers = upper_axes(figure)
    lowers = [ax for ax in figure.axes if ax.get_ylabel() == SHARE_LABEL]
    assert [ax.get_title(loc="left").split(":")[0] for ax in uppers] == ["PFE", "KO"]
    assert len(lowers) == 2
    assert sum(ax.get_xlabel() == TIME_LABEL for ax in figure.axes) == 1
    assert {ax.get_ylabel() for ax in figure.axes} == {INDEX_LABEL, SHARE_LABEL, "articles"}
    assert INDEX_LABEL == "emotion index (decayed, −1…+1)"


def test_the_main_curve_is_the_emotion_index_at_bucket_ends(figure: Figure) -> None:
    for ax, panel in zip(upper_axes(figure), PANELS, strict=True):
        index = line(ax, "emotion_index")
        np.testing.assert_array_equal(index.get_ydata(), panel.series["emotion_index"].to_numpy())
        ends = (panel.series["bucket_start"] + pd.Timedelta(seconds=WIDTH)).dt.tz_localize(None).to_numpy()
        np.testing.assert_array_equal(np.asarray(index.get_xdata(), dtype="datetime64[ns]"), ends)
        assert index.get_linewidth() >= 1.5, "the main curve"


def test_mean_sentiment_is_faint_points_and_negative_share_its_own_panel(figure: Figure) -> None:
    lowers = [ax for ax in figure.axes if ax.get_ylabel() == SHARE_LABEL]
    for ax, lower, panel in zip(upper_axes(figure), lowers, PANELS, strict=True):
        points = line(ax, "mean_sentiment")
        assert points.get_linestyle() == "None" and points.get_marker() == "o"
        assert (points.get_alpha() or 1) < 1, "faint"
        np.testing.assert_array_equal(points.get_ydata(), panel.series["mean_sentiment"].to_numpy())
        np.testing.assert_array_equal(line(lower, "negative_share").get_ydata(), panel.series["negative_share"].to_numpy())
        assert lower.get_ylim() == pytest.approx((-0.05, 1.05))


def test_article_volume_is_bars_on_a_right_axis(figure: Figure) -> None:
    volumes = [ax for ax in figure.axes if ax.get_ylabel() == "articles"]
    assert len(volumes) == 2
    for ax, panel in zip(volumes, PANELS, strict=True):
        heights = [bar.get_height() for bar in ax.patches]
        assert heights == list(panel.series["article_count"])


def test_one_labelled_span_per_alert_from_fired_to_resolved_or_the_end(figure: Figure) -> None:
    pfe, ko = upper_axes(figure)
    assert [span.get_label() for span in spans(pfe)] == ["adverse_stories, critical", "negative_spike (1h), warning"]
    assert [span.get_label() for span in spans(ko)] == ["adverse_stories, major"]
    texts = [text.get_text().strip() for text in pfe.texts]
    assert texts == ["adverse_stories, critical", "negative_spike (1h), warning"]

    def extent(span: Rectangle) -> tuple[np.datetime64, np.datetime64]:
        import matplotlib.dates as mdates
        left = np.datetime64(mdates.num2date(span.get_x()).replace(tzinfo=None), "s")
        right = np.datetime64(mdates.num2date(span.get_x() + span.get_width()).replace(tzinfo=None), "s")
        return left, right

    resolved, firing = spans(pfe)
    assert extent(resolved) == (np.datetime64("2026-03-02T00:15:00"), np.datetime64("2026-03-02T00:45:00")), "buckets 3..8"
    assert extent(firing) == (np.datetime64("2026-03-02T01:30:00"), np.datetime64("2026-03-02T02:00:00")), "to the end"
    assert resolved.get_facecolor()[:3] == pytest.approx(tuple(int(SEVERITY_COLOURS["critical"][i:i + 2], 16) / 255 for i in (1, 3, 5)))


def test_alert_span_without_last_bucket_runs_to_the_end() -> None:
    row = alert(9, "PFE", "resolved", 3, 3, "warning")
    row["last_bucket_start"] = None
    assert alert_span(row, END) == (pd.Timestamp(START + 3 * timedelta(seconds=WIDTH)), pd.Timestamp(END))


def test_the_legend_names_the_curves_and_the_severities_present(figure: Figure) -> None:
    (legend,) = figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels[:2] == ["emotion index (decayed)", "mean sentiment per bucket"]
    assert {"critical alert", "warning alert", "major alert"} <= set(labels)


def test_the_drawing_is_a_pure_function_of_its_frames() -> None:
    before = [panel.series.copy() for panel in PANELS], ALERTS.copy()
    first = build_figure(PANELS, ALERTS, WIDTH, START, END)
    second = build_figure(PANELS, ALERTS, WIDTH, START, END)
    assert first is not second
    for a, b in zip(upper_axes(first), upper_axes(second), strict=True):
        np.testing.assert_array_equal(line(a, "emotion_index").get_ydata(), line(b, "emotion_index").get_ydata())
    for panel, frame in zip(PANELS, before[0], strict=True):
        pd.testing.assert_frame_equal(panel.series, frame)
    pd.testing.assert_frame_equal(ALERTS, before[1])
