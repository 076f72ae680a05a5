"""Detection rules: a pure function from a timestep frame to the buckets where a rule triggers.

The same code judges one bucket per entity in a live pass and every bucket of months of history
in a backtest: the frame is laid out as an entity x bucket grid and each judged bucket is
compared with the `baseline_buckets` buckets before it, vectorised with numpy.

Rules (each judged per entity and bucket width; parameters in `DetectionRules`):

- negative_spike: the bucket's negative share (or mean p_negative) against the entity's trailing
  robust baseline: median and scaled MAD (1.4826 * MAD, at least `SPIKE_SCALE_FLOOR`) over the
  buckets with articles among the last `baseline_buckets`. Triggers when z >= spike.z, the rise
  over the median >= spike.min_rise, and the bucket has >= spike.min_articles articles.
  Cold start: an entity with fewer than `min_history` such buckets is judged against the market
  entity's baseline (the prior), so a burst about a previously silent company still alerts.
- negative_trend: the decayed emotion index has fallen by >= trend.drop over the last
  trend.buckets buckets, with >= trend.min_articles articles in them, and the index it fell from
  rested on a decay weight of >= trend.min_articles (a new entity's first few headlines are not a
  level to fall from).
- negative_buzz: the article count against its own trailing median and MAD (scale at least the
  Poisson noise sqrt(median), and 1) while the system was receiving news (market bucket not
  empty); triggers when z >= buzz.z, count >= buzz.min_articles and >= buzz.ratio x the median,
  and the bucket's mean sentiment <= buzz.max_sentiment. A silent entity has a median of 0.
  Buzz catches the bursts the spike rule misses: a bucket that raises a negative spike for an
  entity does not also raise buzz for it (one story, one alert).

Severity comes from how far past its thresholds the value is (`severity_for_excess`).

Besides triggered rows, detection returns "hot" rows (`triggered` False): buckets where the rule's
measure is still past its threshold but another condition fails (too few articles, say). They
never fire an alert, but they keep a firing one from counting the bucket as quiet: an alert
resolves only when the value is back within its baseline, not when the story goes thin.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.alerting.severity import severity_for_excess

if TYPE_CHECKING:
    from pipeline.config import Settings

RULES: tuple[str, ...] = ("negative_spike", "negative_trend", "negative_buzz")
SPIKE_SCALE_FLOOR = 0.05
"""Smallest spread a negative-share baseline is given: a perfectly flat history is not infinitely certain."""
MAD_TO_SIGMA = 1.4826
PRIOR_MIN_BUCKETS = 3
"""The market prior is used only when the market entity itself has this many buckets with articles."""
_WINDOW_ELEMENTS = 8_000_000
"""Upper bound on entity x judged-bucket x window values held at once (memory stays ~ 100 MB)."""

CANDIDATE_COLUMNS = [
    "entity", "rule", "width_seconds", "bucket_start", "triggered", "value", "baseline", "scale", "z_score",
    "threshold", "article_count", "baseline_source", "metric", "severity",
]


@dataclass(frozen=True)
class SpikeRule:
    metric: str = "negative_share"
    z: float = 3.5
    min_rise: float = 0.25
    min_articles: int = 5


@dataclass(frozen=True)
class TrendRule:
    buckets: int = 36
    drop: float = 0.2
    min_articles: int = 20


@dataclass(frozen=True)
class BuzzRule:
    z: float = 4.0
    ratio: float = 3.0
    min_articles: int = 8
    max_sentiment: float = -0.2


@dataclass(frozen=True)
class DetectionRules:
    baseline_buckets: int = 48
    min_history: int = 12
    spike: SpikeRule = SpikeRule()
    trend: TrendRule = TrendRule()
    buzz: BuzzRule = BuzzRule()

    @classmethod
    def from_settings(cls, settings: Settings) -> DetectionRules:
        return cls(
            baseline_buckets=settings.alert_baseline_buckets,
            min_history=settings.alert_min_history,
            spike=SpikeRule(settings.spike_metric, settings.spike_z, settings.spike_min_rise, settings.spike_min_articles),
            trend=TrendRule(settings.trend_buckets, settings.trend_drop, settings.trend_min_articles),
            buzz=BuzzRule(settings.buzz_z, settings.buzz_ratio, settings.buzz_min_articles, settings.buzz_max_sentiment),
        )

    @property
    def lookback_buckets(self) -> int:
        """Buckets before the first judged one that detection reads."""
        return max(self.baseline_buckets, self.trend.buckets)


@dataclass(frozen=True)
class _Grid:
    """The frame as entity x bucket arrays; column k is bucket `first + k * width`."""

    entities: list[str]
    first: pd.Timestamp
    counts: np.ndarray
    metric: np.ndarray
    sentiment: np.ndarray
    emotion_index: np.ndarray
    decay_weight: np.ndarray


def detect(
    timesteps: pd.DataFrame,
    width_seconds: int,
    judge_from: datetime,
    judge_through: datetime,
    rules: DetectionRules,
    market_entity: str,
) -> pd.DataFrame:
    """Candidates (one row per entity, rule and triggered or hot bucket) for buckets starting in
    [judge_from, judge_through], oldest first.

    `timesteps` holds the stored (non-empty) buckets of one width with columns entity,
    bucket_start, article_count, mean_p_negative, negative_share, mean_sentiment, emotion_index
    (and decay_weight, which the trend rule uses), from `rules.lookback_buckets` buckets before
    `judge_from` on; absent buckets are empty.
    """
    width = timedelta(seconds=width_seconds)
    first = pd.Timestamp(judge_from) - rules.lookback_buckets * width
    judged = int((pd.Timestamp(judge_through) - pd.Timestamp(judge_from)) // width) + 1
    if judged <= 0 or timesteps.empty:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    grid = _layout(timesteps, first, width, rules.lookback_buckets + judged, rules.spike.metric)
    entity_count = len(grid.entities)
    market_row = grid.entities.index(market_entity) if market_entity in grid.entities else None
    chunk = max(1, _WINDOW_ELEMENTS // max(1, entity_count * rules.lookback_buckets))
    frames: list[pd.DataFrame] = []
    for start in range(0, judged, chunk):
        columns = np.arange(rules.lookback_buckets + start, rules.lookback_buckets + min(judged, start + chunk))
        spikes = _spike(grid, columns, rules, market_row)
        buzz = _buzz(grid, columns, rules, market_row)
        if not spikes.empty and not buzz.empty:
            spiking = set(zip(spikes["entity"][spikes["triggered"]], spikes["column"][spikes["triggered"]]))
            buzz = buzz[[key not in spiking for key in zip(buzz["entity"], buzz["column"])]]
        frames.extend(frame for frame in (spikes, _trend(grid, columns, rules), buzz) if not frame.empty)
    if not frames:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    candidates = pd.concat(frames, ignore_index=True)
    candidates["width_seconds"] = width_seconds
    candidates["bucket_start"] = grid.first + pd.to_timedelta(candidates.pop("column") * width_seconds, unit="s")
    return candidates.sort_values(["bucket_start", "entity", "rule"], ignore_index=True)[CANDIDATE_COLUMNS]


def _layout(frame: pd.DataFrame, first: pd.Timestamp, width: timedelta, length: int, metric: str) -> _Grid:
    starts = pd.to_datetime(frame["bucket_start"], utc=True)
    offsets = ((starts - first) / width).to_numpy()
    inside = (offsets >= 0) & (offsets < length)
    frame = frame.loc[inside]
    columns = offsets[inside].astype(np.int64)
    codes, entities = pd.factorize(frame["entity"], sort=True)
    shape = (len(entities), length)
    counts = np.zeros(shape)
    counts[codes, columns] = frame["article_count"].to_numpy(dtype=float)
    arrays = {}
    for name, source in (("metric", metric), ("sentiment", "mean_sentiment"), ("emotion_index", "emotion_index")):
        values = np.full(shape, np.nan)
        values[codes, columns] = frame[source].to_numpy(dtype=float)
        arrays[name] = values
    weight = np.full(shape, np.nan)
    if "decay_weight" in frame:
        weight[codes, columns] = frame["decay_weight"].to_numpy(dtype=float)
    else:
        weight[codes, columns] = np.inf  # no weights given: every stored index counts as well founded
    # The decayed index does not change across empty buckets: carry it forward (and its weight,
    # which in truth decays a little there).
    emotion = pd.DataFrame(arrays["emotion_index"]).ffill(axis=1).to_numpy()
    weight = pd.DataFrame(weight).ffill(axis=1).to_numpy()
    return _Grid(list(entities), first, counts, arrays["metric"], arrays["sentiment"], emotion, weight)


def _windows(values: np.ndarray, columns: np.ndarray, size: int) -> np.ndarray:
    """values[:, c - size : c] for each judged column c, as an (entities, judged, size) view."""
    return sliding_window_view(values, size, axis=1)[:, columns - size, :]


def _robust_baseline(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, scaled MAD and number of values of each window, ignoring NaN (empty buckets)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN, as wanted
        median = np.nanmedian(windows, axis=2)
        mad = np.nanmedian(np.abs(windows - median[..., None]), axis=2)
    return median, MAD_TO_SIGMA * mad, np.sum(~np.isnan(windows), axis=2)


def _spike(grid: _Grid, columns: np.ndarray, rules: DetectionRules, market_row: int | None) -> pd.DataFrame:
    spike = rules.spike
    median, scale, history = _robust_baseline(_windows(grid.metric, columns, rules.baseline_buckets))
    own = history >= rules.min_history
    baseline = np.where(own, median, np.nan)
    if market_row is not None:
        prior_ok = history[market_row] >= PRIOR_MIN_BUCKETS
        baseline = np.where(own, median, np.where(prior_ok, median[market_row], np.nan)[None, :])
        scale = np.where(own, scale, scale[market_row][None, :])
    scale = np.maximum(np.nan_to_num(scale, nan=0.0), SPIKE_SCALE_FLOOR)
    value = grid.metric[:, columns]
    count = grid.counts[:, columns]
    rise = value - baseline
    z = rise / scale
    with np.errstate(invalid="ignore"):
        hot = (rise >= spike.min_rise) & (z >= spike.z)
        triggered = hot & (count >= spike.min_articles)
    excess = np.minimum(z / spike.z, rise / spike.min_rise)
    source = np.where(own, "own", "market")
    return _candidates(grid, columns, triggered, hot, "negative_spike", value, baseline, scale, z, spike.z, count,
                       source, spike.metric, excess)


def _trend(grid: _Grid, columns: np.ndarray, rules: DetectionRules) -> pd.DataFrame:
    trend = rules.trend
    earlier = grid.emotion_index[:, columns - trend.buckets]
    value = grid.emotion_index[:, columns]
    drop = earlier - value
    volume = _windows(grid.counts, columns + 1, trend.buckets).sum(axis=2)
    founded = grid.decay_weight[:, columns - trend.buckets] >= trend.min_articles
    with np.errstate(invalid="ignore"):
        hot = (drop >= trend.drop) & founded
        triggered = hot & (volume >= trend.min_articles)
    nan = np.full(value.shape, np.nan)
    source = np.full(value.shape, "own")
    return _candidates(grid, columns, triggered, hot, "negative_trend", value, earlier, nan, nan, trend.drop, volume,
                       source, "emotion_index", drop / trend.drop)


def _buzz(grid: _Grid, columns: np.ndarray, rules: DetectionRules, market_row: int | None) -> pd.DataFrame:
    buzz = rules.buzz
    receiving = (grid.counts[market_row] if market_row is not None else grid.counts.sum(axis=0)) > 0
    counts = np.where(receiving[None, :], grid.counts, np.nan)
    median, scale, history = _robust_baseline(_windows(counts, columns, rules.baseline_buckets))
    scale = np.maximum(np.nan_to_num(scale, nan=0.0), np.sqrt(np.maximum(np.nan_to_num(median, nan=0.0), 1.0)))
    count = grid.counts[:, columns]
    z = (count - median) / scale
    with np.errstate(invalid="ignore"):
        hot = (history >= rules.min_history) & (count >= buzz.ratio * median) & (z >= buzz.z) & (
            grid.sentiment[:, columns] <= buzz.max_sentiment)
        triggered = hot & (count >= buzz.min_articles)
    excess = np.minimum(z / buzz.z, count / buzz.min_articles)
    source = np.full(count.shape, "own")
    return _candidates(grid, columns, triggered, hot, "negative_buzz", count, median, scale, z, buzz.z, count, source,
                       "article_count", excess)


def _candidates(
    grid: _Grid, columns: np.ndarray, triggered: np.ndarray, hot: np.ndarray, rule: str, value: np.ndarray,
    baseline: np.ndarray,
    scale: np.ndarray, z: np.ndarray, threshold: float, count: np.ndarray, source: np.ndarray, metric: str,
    excess: np.ndarray,
) -> pd.DataFrame:
    rows, judged = np.nonzero(triggered | hot)
    if rows.size == 0:
        return pd.DataFrame()
    return pd.DataFrame({
        "entity": [grid.entities[row] for row in rows],
        "rule": rule,
        "column": columns[judged],
        "triggered": triggered[rows, judged],
        "value": value[rows, judged],
        "baseline": baseline[rows, judged],
        "scale": scale[rows, judged],
        "z_score": z[rows, judged],
        "threshold": threshold,
        "article_count": count[rows, judged].astype(np.int64),
        "baseline_source": source[rows, judged],
        "metric": metric,
        "severity": [severity_for_excess(float(e)) if math.isfinite(e) else "critical" for e in excess[rows, judged]],
    })
