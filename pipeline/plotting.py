"""The `finsent plot` picture: one panel per entity with its sentiment curves and alerts, as a PNG.

Rendering only: the caller reads the DataFrames (storage.queries.filled_series, alerts_frame)
and hands them in. Matplotlib's object API with the Agg canvas, no pyplot: no global figure state,
no display needed, safe inside the demo's threads.

Each panel: mean sentiment (p_pos - p_neg, -1..1) and negative share (0..1) per bucket on the left
axis, drawn at the bucket's middle; article counts as light bars on the right axis. Empty buckets
are gaps in the curves and zero-height bars (a mean of no articles is not zero sentiment); points
carry small markers so an isolated bucket between two empty ones still shows. Alerts are vertical
lines through the middle of their first bucket, coloured by severity and labelled with the rule.
Past SEPARATE_BARS_MAX buckets the counts are one filled step outline instead of a bar each: bars
a pixel wide show no gaps anyway (only moiré), and one artist draws 20,000 buckets in a blink where
20,000 rectangles take most of a minute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.errors import UserError
from pipeline.tabular import clock_text, width_label

if TYPE_CHECKING:  # matplotlib (the plot extra) is imported where a picture is drawn, so this module loads without it
    from matplotlib.axes import Axes
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

DPI = 100
FIGURE_WIDTH_PX = 1200
PANEL_HEIGHT_PX = 230
HEADER_HEIGHT_PX = 90
SENTIMENT_COLOUR = "#1c7ed6"
NEGATIVE_SHARE_COLOUR = "#ae3ec9"
COUNT_COLOUR = "#ced4da"
SEVERITY_COLOURS = {"warning": "#f59f00", "major": "#f76707", "critical": "#e03131"}
SEPARATE_BARS_MAX = 400
"""Most buckets drawn as separate bars: three pixels each on a 1200-pixel panel."""
MISSING_EXTRA = "finsent plot needs the plot extra: pip install 'finsent[plot]'"


@dataclass(frozen=True)
class EntityPanel:
    """One entity's regular bucket grid (the columns of storage.queries.filled_series)."""

    entity: str
    series: pd.DataFrame


def figure_pixels(panels: int) -> tuple[int, int]:
    """(width, height) in pixels of the PNG for this many panels: the size is fixed, not fitted."""
    return FIGURE_WIDTH_PX, HEADER_HEIGHT_PX + PANEL_HEIGHT_PX * panels


def render_png(
    panels: Sequence[EntityPanel], alerts: pd.DataFrame, width_seconds: int, start: datetime, end: datetime, out: Path
) -> None:
    """Draw the panels over [start, end) with `alerts` (rows of storage.queries.alerts_frame) and write a PNG."""
    try:
        import matplotlib.dates as mdates
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError(MISSING_EXTRA) from None
    if not panels:
        raise ValueError("nothing to plot: no panels")
    width_px, height_px = figure_pixels(len(panels))
    figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    width = timedelta(seconds=width_seconds)
    left, right = _naive_utc(start), _naive_utc(end)
    for ax, panel in zip(axes, panels, strict=True):
        _draw_panel(ax, panel, alerts[alerts["entity"] == panel.entity], width, left + (right - left) * 0.8)
    axes[-1].set_xlim(left, right)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(axes[-1].xaxis.get_major_locator()))
    axes[-1].set_xlabel("event time (UTC)")
    figure.suptitle(
        f"finsent: sentiment per {width_label(width_seconds)} bucket, "
        f"{clock_text(start)} to {clock_text(end)} UTC",
        fontsize=12,
    )
    figure.legend(handles=_legend_handles(alerts), loc="outside lower center", ncol=7, fontsize=8, frameon=False)
    figure.savefig(out, format="png", dpi=DPI)


def _draw_panel(ax: Axes, panel: EntityPanel, alerts: pd.DataFrame, width: timedelta, label_left_of: np.datetime64) -> None:
    series = panel.series
    starts = _naive_utc_index(series["bucket_start"])
    middles = starts + pd.Timedelta(width) / 2
    counts = ax.twinx()
    _draw_counts(counts, starts, series["article_count"].to_numpy(), pd.Timedelta(width))
    counts.set_ylim(0, max(1, int(series["article_count"].max() or 0)) * 2.2)
    counts.set_ylabel("articles", fontsize=8, color="#868e96")
    counts.tick_params(labelsize=7, colors="#868e96")
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.axhline(0, color="#adb5bd", linewidth=0.6)
    ax.plot(middles, series["mean_sentiment"].to_numpy(dtype=float), color=SENTIMENT_COLOUR, linewidth=1.4,
            marker="o", markersize=2.5)
    ax.plot(middles, series["negative_share"].to_numpy(dtype=float), color=NEGATIVE_SHARE_COLOUR, linewidth=1.1,
            marker="o", markersize=2, alpha=0.85)
    ax.set_ylim(-1.05, 1.15)
    ax.set_yticks([-1, -0.5, 0, 0.5, 1])
    ax.tick_params(labelsize=7)
    ax.grid(axis="x", color="#f1f3f5", linewidth=0.6)
    total = int(series["article_count"].sum())
    ax.set_title(f"{panel.entity}: {total} articles, {len(alerts)} alerts", loc="left", fontsize=10)
    for alert in alerts.to_dict("records"):
        _mark_alert(ax, alert, width, label_left_of)


def _draw_counts(ax: Axes, starts: pd.DatetimeIndex, counts: np.ndarray, width: pd.Timedelta) -> None:
    """Article counts per bucket: separate bars when few, else one filled step outline (see above)."""
    import matplotlib.dates as mdates
    if len(starts) <= SEPARATE_BARS_MAX:
        ax.bar(starts, counts, width=width * 0.9, align="edge", color=COUNT_COLOUR, linewidth=0)
        return
    edges = starts.append(pd.DatetimeIndex([starts[-1] + width]))
    ax.stairs(counts, mdates.date2num(edges), fill=True, color=COUNT_COLOUR, linewidth=0)


def _mark_alert(ax: Axes, alert: Mapping[str, Any], plotted_width: timedelta, label_left_of: np.datetime64) -> None:
    """A dashed line through the alert's first bucket; near the right edge the label goes left of it."""
    alert_width = timedelta(seconds=int(alert["width_seconds"]))
    # numpy's stubs lack datetime64 + timedelta, which gives a datetime (that axvline takes) at runtime
    at = _naive_utc(alert["bucket_start"]) + alert_width / 2  # type: ignore[operator]
    colour = SEVERITY_COLOURS.get(str(alert["severity"]), "#495057")
    label = str(alert["rule"])
    if alert_width != plotted_width:
        label += f" ({width_label(int(alert['width_seconds']))})"
    ax.axvline(at, color=colour, linewidth=1.6, linestyle="--")
    text = f"{label}, {alert['severity']}"
    on_left = at > label_left_of
    ax.annotate(f"{text} " if on_left else f" {text}", xy=(at, 1.0), xycoords=("data", "axes fraction"),
                ha="right" if on_left else "left", va="top", fontsize=7, color=colour)


def _legend_handles(alerts: pd.DataFrame) -> list[Line2D | Patch]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Line2D | Patch] = [
        Line2D([], [], color=SENTIMENT_COLOUR, marker="o", markersize=3, label="mean sentiment (p_pos - p_neg)"),
        Line2D([], [], color=NEGATIVE_SHARE_COLOUR, marker="o", markersize=3, label="negative share"),
        Patch(color=COUNT_COLOUR, label="articles (right axis)"),
    ]
    present = set(alerts["severity"].astype(str)) if not alerts.empty else set()
    handles += [Line2D([], [], color=colour, linestyle="--", label=f"{severity} alert")
                for severity, colour in SEVERITY_COLOURS.items() if severity in present]
    return handles


def _naive_utc(moment: datetime | pd.Timestamp) -> np.datetime64:
    """Matplotlib's date axis wants one convention; every time here is UTC, shown as such."""
    return pd.Timestamp(moment).tz_convert("UTC").tz_localize(None).to_datetime64()


def _naive_utc_index(column: pd.Series) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(column, utc=True)).tz_localize(None)

