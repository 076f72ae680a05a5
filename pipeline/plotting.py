"""The `finsent plot` picture: per entity, its emotion curve with the alerts as spans, as a PNG.

Drawing only: the caller reads the frames (storage.queries.filled_series, alerts_frame with
last_bucket) and hands them in; `build_figure` is a pure function of them, `render_png` writes it.
Matplotlib's object API with the Agg canvas, no pyplot: no global figure state, no display needed,
safe inside the demo's threads.

Each entity gets two stacked axes over one time axis:
- upper: the decayed emotion index (bucket column emotion_index, −1…+1) as the main curve, drawn at
  each bucket's end (the index after that bucket's articles; it carries across empty buckets), the
  bucket's own mean sentiment as faint points at its middle, article volume as light bars on a right
  axis, and each alert as a shaded span from its first bucket to the end of the last bucket judged
  (to the plot's end while it fires), coloured by severity and labelled with rule and severity;
- lower: the negative share (0…1) per bucket.
Empty buckets are gaps in the mean and the share (a mean of no articles is not zero sentiment) and
zero-height bars. Past SEPARATE_BARS_MAX buckets the counts are one filled step outline instead of a
bar each: bars a pixel wide show no gaps anyway, and one artist draws 20,000 buckets in a blink where
20,000 rectangles take most of a minute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.errors import UserError
from pipeline.tabular import clock_text, width_label

if TYPE_CHECKING:  # matplotlib (the plot extra) is imported where a picture is drawn, so this module loads without it
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

DPI = 100
FIGURE_WIDTH_PX = 1200
PANEL_HEIGHT_PX = 300
HEADER_HEIGHT_PX = 90
INDEX_COLOUR = "#1c7ed6"
SENTIMENT_COLOUR = "#74c0fc"
NEGATIVE_SHARE_COLOUR = "#ae3ec9"
COUNT_COLOUR = "#dee2e6"
SEVERITY_COLOURS = {"warning": "#f59f00", "major": "#f76707", "critical": "#e03131"}
SPAN_ALPHA = 0.16
SEPARATE_BARS_MAX = 400
"""Most buckets drawn as separate bars: three pixels each on a 1200-pixel panel."""
INDEX_LABEL = "emotion index (decayed, −1…+1)"
INDEX_CURVE = "emotion index (decayed)"
SENTIMENT_POINTS = "mean sentiment per bucket"
SHARE_LABEL = "negative share"
TIME_LABEL = "event time (UTC)"
MISSING_EXTRA = "finsent plot needs the plot extra: pip install 'finsent[plot]'"


@dataclass(frozen=True)
class EntityPanel:
    """One entity's regular bucket grid (the columns of storage.queries.filled_series)."""

    entity: str
    series: pd.DataFrame


def figure_pixels(panels: int) -> tuple[int, int]:
    """(width, height) in pixels of the PNG for this many panels: the size is fixed, not fitted."""
    return FIGURE_WIDTH_PX, HEADER_HEIGHT_PX + PANEL_HEIGHT_PX * panels


def alert_label(alert: Mapping[str, Any], plotted_width_seconds: int) -> str:
    """'rule, severity', with the alert's own width when it was judged at another one."""
    rule = str(alert["rule"])
    if int(alert["width_seconds"]) != plotted_width_seconds:
        rule += f" ({width_label(int(alert['width_seconds']))})"
    return f"{rule}, {alert['severity']}"


def alert_span(alert: Mapping[str, Any], end: datetime) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[first bucket's start, last judged bucket's end) in event time; to `end` while firing (or
    when the frame lacks last_bucket_start)."""
    first = pd.Timestamp(alert["bucket_start"])
    last = alert.get("last_bucket_start")
    if alert["state"] == "firing" or last is None or pd.isna(last):
        return first, pd.Timestamp(end)
    return first, pd.Timestamp(last) + pd.Timedelta(seconds=int(alert["width_seconds"]))


def build_figure(
    panels: Sequence[EntityPanel], alerts: pd.DataFrame, width_seconds: int, start: datetime, end: datetime
) -> Figure:
    """The picture of the panels over [start, end) with `alerts` (rows of storage.queries.alerts_frame)."""
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
    grid = figure.subplots(2 * len(panels), 1, sharex=True, squeeze=False,
                           gridspec_kw={"height_ratios": [3, 1] * len(panels)})[:, 0]
    left, right = _naive_utc(start), _naive_utc(end)
    for k, panel in enumerate(panels):
        _draw_panel(grid[2 * k], grid[2 * k + 1], panel, alerts[alerts["entity"] == panel.entity], width_seconds,
                    end, left + (right - left) * 0.8)
    bottom = grid[-1]
    bottom.set_xlim(left, right)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(bottom.xaxis.get_major_locator()))
    bottom.set_xlabel(TIME_LABEL)
    figure.suptitle(
        f"finsent: emotion index per {width_label(width_seconds)} bucket, "
        f"{clock_text(start)} to {clock_text(end)} UTC",
        fontsize=12,
    )
    figure.legend(handles=_legend_handles(alerts), loc="outside lower center", ncol=7, fontsize=8, frameon=False)
    return figure


def render_png(
    panels: Sequence[EntityPanel], alerts: pd.DataFrame, width_seconds: int, start: datetime, end: datetime, out: Path
) -> None:
    """Draw the panels (build_figure) and write a PNG."""
    build_figure(panels, alerts, width_seconds, start, end).savefig(out, format="png", dpi=DPI)


def _draw_panel(ax: Axes, share_ax: Axes, panel: EntityPanel, alerts: pd.DataFrame, width_seconds: int, end: datetime,
                label_left_of: np.datetime64) -> None:
    series = panel.series
    width = pd.Timedelta(seconds=width_seconds)
    starts = _naive_utc_index(series["bucket_start"])
    counts = ax.twinx()
    _draw_counts(counts, starts, series["article_count"].to_numpy(), width)
    counts.set_ylim(0, max(1, int(series["article_count"].max() or 0)) * 2.5)
    counts.set_ylabel("articles", fontsize=8, color="#868e96")
    counts.tick_params(labelsize=7, colors="#868e96")
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.axhline(0, color="#adb5bd", linewidth=0.6)
    for alert in alerts.to_dict("records"):
        _shade_alert(ax, alert, width_seconds, end, label_left_of)
    ax.plot(starts + width / 2, series["mean_sentiment"].to_numpy(dtype=float), linestyle="none", marker="o",
            markersize=2.5, color=SENTIMENT_COLOUR, alpha=0.55, label=SENTIMENT_POINTS, gid="mean_sentiment")
    ax.plot(starts + width, series["emotion_index"].to_numpy(dtype=float), color=INDEX_COLOUR, linewidth=1.8,
            label=INDEX_CURVE, gid="emotion_index")
    ax.set_ylim(-1.05, 1.15)
    ax.set_yticks([-1, -0.5, 0, 0.5, 1])
    ax.set_ylabel(INDEX_LABEL, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(axis="x", color="#f1f3f5", linewidth=0.6)
    total = int(series["article_count"].sum())
    ax.set_title(f"{panel.entity}: {total} articles, {len(alerts)} alerts", loc="left", fontsize=10)
    share_ax.plot(starts + width / 2, series["negative_share"].to_numpy(dtype=float), color=NEGATIVE_SHARE_COLOUR,
                  linewidth=1.0, marker="o", markersize=1.8, label=SHARE_LABEL, gid="negative_share")
    share_ax.set_ylim(-0.05, 1.05)
    share_ax.set_yticks([0, 0.5, 1])
    share_ax.set_ylabel(SHARE_LABEL, fontsize=8)
    share_ax.tick_params(labelsize=7)
    share_ax.grid(axis="x", color="#f1f3f5", linewidth=0.6)


def _draw_counts(ax: Axes, starts: pd.DatetimeIndex, counts: np.ndarray, width: pd.Timedelta) -> None:
    """Article counts per bucket: separate bars when few, else one filled step outline (see above)."""
    import matplotlib.dates as mdates
    if len(starts) <= SEPARATE_BARS_MAX:
        ax.bar(starts, counts, width=width * 0.9, align="edge", color=COUNT_COLOUR, linewidth=0)
        return
    edges = starts.append(pd.DatetimeIndex([starts[-1] + width]))
    ax.stairs(counts, mdates.date2num(edges), fill=True, color=COUNT_COLOUR, linewidth=0)


def _shade_alert(ax: Axes, alert: Mapping[str, Any], plotted_width_seconds: int, end: datetime,
                 label_left_of: np.datetime64) -> None:
    """A span fired -> resolved in the severity's colour, labelled at its top; near the right edge
    the label goes left of the span's start."""
    first, last = (_naive_utc(moment) for moment in alert_span(alert, end))
    colour = SEVERITY_COLOURS.get(str(alert["severity"]), "#495057")
    label = alert_label(alert, plotted_width_seconds)
    # matplotlib's stubs say float; its date axis takes datetime64 at runtime
    ax.axvspan(first, last, color=colour, alpha=SPAN_ALPHA, linewidth=0, label=label,  # type: ignore[arg-type]
               gid=f"alert-{alert['id']}")
    ax.axvline(first, color=colour, linewidth=2.0)  # type: ignore[arg-type]  # where it fired, sharp at any span width
    on_left = first > label_left_of
    ax.annotate(f"{label} " if on_left else f" {label}", xy=(first, 1.0), xycoords=("data", "axes fraction"),
                ha="right" if on_left else "left", va="top", fontsize=7, color=colour)


def _legend_handles(alerts: pd.DataFrame) -> list[Line2D | Patch]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Line2D | Patch] = [
        Line2D([], [], color=INDEX_COLOUR, linewidth=1.8, label=INDEX_CURVE),
        Line2D([], [], color=SENTIMENT_COLOUR, linestyle="none", marker="o", markersize=3, label=SENTIMENT_POINTS),
        Line2D([], [], color=NEGATIVE_SHARE_COLOUR, marker="o", markersize=3, label=f"{SHARE_LABEL} (lower panel)"),
        Patch(color=COUNT_COLOUR, label="articles (right axis)"),
    ]
    present = set(alerts["severity"].astype(str)) if not alerts.empty else set()
    handles += [Patch(color=colour, alpha=0.4, label=f"{severity} alert")
                for severity, colour in SEVERITY_COLOURS.items() if severity in present]
    return handles


def _naive_utc(moment: datetime | pd.Timestamp) -> np.datetime64:
    """Matplotlib's date axis wants one convention; every time here is UTC, shown as such."""
    return pd.Timestamp(moment).tz_convert("UTC").tz_localize(None).to_datetime64()


def _naive_utc_index(column: pd.Series) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(column, utc=True)).tz_localize(None)
