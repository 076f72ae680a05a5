"""Detection: a pure function from stored buckets to the buckets where an entity's adverse news surges.

Real news is sparse and bursty: a company gets a few headlines a day, most buckets are empty, the
big stories hit companies with no history and build over hours. So detection judges counts over
rolling horizons, not single buckets:

- Evidence: for each judged bucket end t and horizon H (default 1h, 6h, 1d, 3d), the entity's
  adverse stories in (t - H, t]: `buckets.adverse_count` summed over the buckets (negative or
  risk-tagged articles, a syndicated copy counting 0 and a feed dump 1; pipeline/series.py),
  and among them its risk-event stories (`risk_count`: a lexicon match that names the event).
  Both series are judged the same way; the rarer is the evidence (see SERIES).
- Expected rate, from the entity's own trailing window in event time, [h - Hmax - trailing,
  h - Hmax) where h is the hour of t and Hmax the longest horizon (it ends where the story being
  judged may start), blended with an empirical-Bayes prior: Gamma(alpha, beta) with beta =
  `prior_weight` days of pseudo-history and alpha = beta * the market rate, the median over
  entities with news in [h - trailing, h) of their adverse stories per day (the median, not the
  mean: a few companies carry most of the news). A new entity is judged against that prior; its
  own history takes over as it grows (weight T / (beta + T) after T days of stored news, quiet
  days included: a company silent for weeks is expected to stay quieter than the median one).
  Evidence says "prior" while the entity has no story of its own in the window, or T < beta.
- Count model: the posterior predictive of a Poisson count under that Gamma, a negative binomial
  (shape alpha + n, p = (beta + T) / (beta + T + H)); the tail P(N >= observed) is the rarity.
- Trigger: a bucket that adds adverse stories, with some horizon holding at least `min_stories`
  adverse stories and a tail at most the
  threshold that spends the alarm budget, `false_alarms_per_year` per entity over every
  (horizon, bucket) judgement in a year, treating each horizon's non-overlapping windows as the
  independent tests (8760 one-hour + 1460 six-hour + 365 one-day + 122 three-day windows a year:
  one false alarm per entity-year gives a tail of 9.3e-5).
- Severity from rarity: expected false alarms per entity-year at the observed tail; warning
  within the budget, major at a tenth of it, critical at a hundredth.
- Hot: a bucket where some horizon up to `hot_horizon` (default: all of them) still has a tail
  under `hot_factor` times the threshold. It never fires an alert; it keeps a firing one open, so
  an alert resolves once the story has left its horizons (up to three days after its last adverse
  story), not when one hour passes without a headline.
- The market-wide entity is judged on its own history only (it has no peers), as its own rule,
  once it has a day of history.

One candidate row per entity and triggered or hot bucket, for its rarest horizon; the lifecycle
folds them into one alert episode per entity (pipeline/alerting/lifecycle.py).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from scipy.special import betainc

from pipeline.alerting.severity import SEVERITIES

COMPANY_RULE = "negative_news"
MARKET_RULE = "market_negative_news"
RULES: tuple[str, ...] = (COMPANY_RULE, MARKET_RULE)
YEAR_SECONDS = 365 * 86400
HOUR_SECONDS = 3600
DAY_SECONDS = 86400
SEVERITY_STEP = 10.0
"""Each severity level is this many times rarer than the one below."""
MARKET_MIN_HISTORY_DAYS = 1.0
_ENTITY_BLOCK = 2000
"""Entities judged at once: bounds the grids' memory (entities x buckets floats)."""

CANDIDATE_COLUMNS = [
    "entity", "rule", "width_seconds", "bucket_start", "triggered", "value", "baseline", "horizon_seconds",
    "tail_probability", "false_alarms_per_year", "threshold", "adverse_stories", "article_count", "baseline_stories",
    "exposure_days",
    "own_weight", "prior_rate", "mean_p_negative", "baseline_p_negative", "baseline_source", "metric", "severity",
]


@dataclass(frozen=True)
class DetectionRules:
    horizons: tuple[int, ...] = (3600, 21600, 86400, 259200)
    trailing_seconds: int = 28 * DAY_SECONDS
    prior_weight_seconds: int = 7 * DAY_SECONDS
    false_alarms_per_year: float = 1.0
    min_stories: float = 3.0
    hot_horizon_seconds: int = 3 * DAY_SECONDS
    hot_factor: float = 100.0

    def __post_init__(self) -> None:
        if not self.horizons or any(h <= 0 for h in self.horizons):
            raise ValueError(f"horizons must be positive seconds, got {self.horizons!r}")

    @property
    def longest_horizon(self) -> int:
        return max(self.horizons)

    @property
    def judgements_per_year(self) -> float:
        """Independent (horizon, window) tests per entity-year: each horizon's disjoint windows."""
        return sum(YEAR_SECONDS / horizon for horizon in self.horizons)

    @property
    def threshold(self) -> float:
        """The tail probability that spends `false_alarms_per_year` per entity."""
        return self.false_alarms_per_year / self.judgements_per_year

    @property
    def lookback_seconds(self) -> int:
        """How far before the first judged bucket detection reads buckets (the longest horizon)."""
        return self.longest_horizon

    @property
    def history_seconds(self) -> int:
        """How far before the first judged bucket the own and prior windows reach."""
        return self.longest_horizon + self.trailing_seconds + HOUR_SECONDS

    def severity(self, tail: float) -> str:
        """warning within the alarm budget, major at a tenth of it, critical at a hundredth."""
        if not math.isfinite(tail):
            return SEVERITIES[-1]
        expected = tail * self.judgements_per_year
        level = 0
        budget = self.false_alarms_per_year
        while level < len(SEVERITIES) - 1 and expected <= budget / SEVERITY_STEP:
            budget /= SEVERITY_STEP
            level += 1
        return SEVERITIES[level]


def judged_hours(judge_from: datetime, judge_through: datetime, width_seconds: int) -> pd.DatetimeIndex:
    """The hours in which the judged buckets end: the expected rates change hour by hour."""
    step = pd.Timedelta(seconds=width_seconds)
    return pd.date_range((_utc(judge_from) + step).floor("h"), (_utc(judge_through) + step).floor("h"), freq="h")


def history_edges(judge_from: datetime, judge_through: datetime, width_seconds: int, rules: DetectionRules) -> pd.DatetimeIndex:
    """Where the own and prior windows of the judged hours start and end, sorted and unique.

    Detection needs the trailing sums only between these edges, so the history is read as one
    summed band per entity between consecutive edges (storage.queries.history_bands), not as
    every bucket of the trailing weeks: a few bands per entity instead of hundreds of rows."""
    hours = judged_hours(judge_from, judge_through, width_seconds)
    longest = pd.Timedelta(seconds=rules.longest_horizon)
    trailing = pd.Timedelta(seconds=rules.trailing_seconds)
    return hours.union(hours - longest).union(hours - trailing).union(hours - longest - trailing)

def negative_binomial_tail(observed: np.ndarray, shape: np.ndarray, p: np.ndarray) -> np.ndarray:
    """P(N >= observed) for N ~ NB(shape, p) (failures before `shape` successes of probability p):
    the regularized incomplete beta I_{1-p}(observed, shape); 1 where observed <= 0."""
    observed, shape, p = np.broadcast_arrays(observed, shape, p)
    tail = np.ones(observed.shape)
    some = observed > 0  # most cells of sparse news: nothing observed, tail 1 without the special function
    with np.errstate(invalid="ignore", divide="ignore"):
        tail[some] = betainc(observed[some], np.maximum(shape[some], 1e-12), 1.0 - p[some])
    return tail


def detect(
    buckets: pd.DataFrame,
    bands: pd.DataFrame,
    data_start: datetime | None,
    width_seconds: int,
    judge_from: datetime,
    judge_through: datetime,
    rules: DetectionRules,
    market_entity: str,
) -> pd.DataFrame:
    """Candidates (one row per entity and triggered or hot bucket) for buckets starting in
    [judge_from, judge_through], oldest first.

    `buckets`: the stored buckets of this width (the columns of storage.queries.DETECTION_COLUMNS)
    from `rules.lookback_seconds` before `judge_from` on; `bands`: per entity, the sums of those
    buckets (storage.queries.BAND_DETECTION_COLUMNS) between consecutive `history_edges` (band b:
    [edges[b - 1], edges[b])); `data_start`: the first stored bucket of the width (where history
    begins: exposure never counts time before it).
    """
    width = timedelta(seconds=width_seconds)
    start, through = _utc(judge_from), _utc(judge_through)
    judged = int((through - start) // width) + 1
    if judged <= 0 or buckets.empty or data_start is None:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    lookback = rules.lookback_seconds // width_seconds
    first = start - lookback * width
    grid = _BucketGrid.build(buckets, first, width_seconds, lookback + judged)
    history = _History.build(bands, history_edges(start, through, width_seconds, rules), grid.entities,
                             judged_hours(start, through, width_seconds), rules, _utc(data_start), market_entity)
    frames = []
    for start in range(0, len(grid.entities), _ENTITY_BLOCK):
        rows = np.arange(start, min(start + _ENTITY_BLOCK, len(grid.entities)))
        frames.append(_judge(grid, history, rows, lookback, judged, width_seconds, rules, market_entity))
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    candidates = pd.concat(frames, ignore_index=True)
    return candidates.sort_values(["bucket_start", "entity"], ignore_index=True)[CANDIDATE_COLUMNS]


def _utc(moment: datetime) -> pd.Timestamp:
    return pd.Timestamp(moment).tz_convert("UTC")


SERIES = ("adverse_count", "risk_count")
"""The counts judged: adverse stories, and the risk-event stories among them (a lexicon match that
names the event: bankruptcy, arrest, fraud...), whose normal rate is far lower, so a few of them
are rare sooner. The rarer of the two is the evidence; its tail doubles (a Bonferroni correction
for looking twice) before it meets the threshold."""


@dataclass(frozen=True)
class _BucketGrid:
    """The buckets as entity x bucket arrays of cumulative sums (a leading zero column)."""

    entities: list[str]
    first: pd.Timestamp
    sums: dict[str, np.ndarray]

    @classmethod
    def build(cls, frame: pd.DataFrame, first: pd.Timestamp, width_seconds: int, length: int) -> _BucketGrid:
        starts = pd.to_datetime(frame["bucket_start"], utc=True)
        offsets = ((starts - first) // pd.Timedelta(seconds=width_seconds)).to_numpy()
        inside = (offsets >= 0) & (offsets < length)
        frame = frame.loc[inside]
        columns = offsets[inside].astype(np.int64)
        codes, entities = pd.factorize(frame["entity"], sort=True)
        shape = (len(entities), length + 1)
        values = {name: frame[name] for name in SERIES}
        values["article_count"] = frame["article_count"]
        values["p_negative_mass"] = frame["mean_p_negative"] * frame["article_count"]
        sums = {}
        for name, column in values.items():
            grid = np.zeros(shape)
            np.add.at(grid, (codes, columns + 1), column.to_numpy(dtype=float))
            sums[name] = np.cumsum(grid, axis=1)
        return cls(list(entities), first, sums)

    def window(self, name: str, rows: np.ndarray, end_column: np.ndarray, start_column: np.ndarray) -> np.ndarray:
        block = self.sums[name][rows[0]:rows[-1] + 1]  # rows are one contiguous block: a view, not a copy
        return block[:, end_column] - block[:, start_column]


@dataclass(frozen=True)
class _History:
    """Per judged hour: each entity's own trailing sums and exposure, and the peers' prior rates."""

    hours: pd.DatetimeIndex
    own: dict[str, np.ndarray]
    """(entity, hour) sums over the own window, by column name."""
    own_exposure_days: np.ndarray
    prior_rate: dict[str, np.ndarray]
    """(entity, hour) per series: the median of the peers' daily rates, the entity itself left out."""
    prior_p_negative: np.ndarray

    @classmethod
    def build(cls, bands: pd.DataFrame, edges: pd.DatetimeIndex, entities: list[str], hours: pd.DatetimeIndex,
              rules: DetectionRules, data_start: pd.Timestamp, market_entity: str) -> _History:
        longest = pd.Timedelta(seconds=rules.longest_horizon)
        trailing = pd.Timedelta(seconds=rules.trailing_seconds)

        def edge(moments: pd.DatetimeIndex) -> np.ndarray:
            return edges.get_indexer(moments)

        index = pd.Index(entities)
        mine = bands[index.get_indexer(bands["entity"]) >= 0]
        own_sums = _band_sums(mine, index.get_indexer(mine["entity"]), len(entities), len(edges))
        companies = bands[bands["entity"] != market_entity]  # the market is no peer of a company
        peer_codes, peer_names = pd.factorize(companies["entity"])
        peer_sums = _band_sums(companies, peer_codes, len(peer_names), len(edges))
        own_start, own_end = edge(hours - longest - trailing), edge(hours - longest)
        prior_start, prior_end = edge(hours - trailing), edge(hours)
        own = {name: grid[:, own_end] - grid[:, own_start] for name, grid in own_sums.items()}
        peers = {name: grid[:, prior_end] - grid[:, prior_start] for name, grid in peer_sums.items()}
        own_exposure = _exposure_days(hours - longest - trailing, hours - longest, data_start)
        prior_exposure = _exposure_days(hours - trailing, hours, data_start)
        left_out = pd.Index(peer_names).get_indexer(entities)
        floor = DAY_SECONDS / rules.trailing_seconds  # at least one story per entity and trailing window
        prior_rate = {}
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # an hour with no entity in the news: NaN
            for name in SERIES:
                median = _leave_one_out_median(np.where(peers["story_count"] > 0, peers[name], np.nan), left_out)
                rate = np.maximum(np.nan_to_num(median / prior_exposure[None, :], nan=0.0), floor)
                prior_rate[name] = np.where(prior_exposure[None, :] * DAY_SECONDS >= HOUR_SECONDS, rate, np.nan)
            prior_p_negative = peers["p_negative_mass"].sum(axis=0) / peers["article_count"].sum(axis=0)
        return cls(hours, own, own_exposure, prior_rate, prior_p_negative)


_BAND_SUMS = (*SERIES, "story_count", "article_count", "p_negative_mass")


def _band_sums(frame: pd.DataFrame, rows: np.ndarray, count: int, edges: int) -> dict[str, np.ndarray]:
    """Cumulative sums over the bands per entity: column i sums [edges[0], edges[i]) (column 0 is 0)."""
    bands = frame["band"].to_numpy(dtype=np.int64)
    keep = (bands >= 1) & (bands < edges)
    sums = {}
    for column in _BAND_SUMS:
        grid = np.zeros((count, edges))
        np.add.at(grid, (rows[keep], bands[keep]), frame[column].to_numpy(dtype=float)[keep])
        sums[column] = np.cumsum(grid, axis=1)
    return sums


def _leave_one_out_median(values: np.ndarray, left_out: np.ndarray) -> np.ndarray:
    """Per column of `values` (peers x hours, NaN: no news), the median of the peers' values with
    peer `left_out[i]` removed, for each i (-1: nobody removed). An entity's prior is its peers'
    rate, never its own: its own burst must not raise the bar it is judged against."""
    result = np.full((len(left_out), values.shape[1]), np.nan)
    for column in range(values.shape[1]):
        present = values[:, column]
        ordered = np.sort(present[~np.isnan(present)])
        if ordered.size == 0:
            continue
        own = np.where(left_out >= 0, present[np.clip(left_out, 0, None)], np.nan)
        removes = ~np.isnan(own)
        size = ordered.size - removes.astype(np.int64)
        position = np.searchsorted(ordered, np.nan_to_num(own), side="left")
        position = np.where(removes, position, ordered.size)  # nothing removed: no shift
        lower, upper = (size - 1) // 2, size // 2
        middle = (_pick_skipping(ordered, position, lower) + _pick_skipping(ordered, position, upper)) / 2
        result[:, column] = np.where(size > 0, middle, np.nan)
    return result


def _pick_skipping(ordered: np.ndarray, position: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Element k of `ordered` once the element at `position` is taken out, for each row (NaN: k < 0 or past the end)."""
    index = np.where(k < position, k, k + 1)
    return np.where((k >= 0) & (index < ordered.size), ordered[np.clip(index, 0, ordered.size - 1)], np.nan)


def _exposure_days(starts: pd.DatetimeIndex, ends: pd.DatetimeIndex, data_start: pd.Timestamp) -> np.ndarray:
    """Days of stored history in each [start, end): none before the first stored bucket."""
    seconds = (ends - starts.map(lambda moment: max(moment, data_start))).total_seconds().to_numpy()
    return np.maximum(seconds, 0.0) / DAY_SECONDS


class _Rarest:
    """Keeps, per cell, the values of the (horizon, series) with the smallest tail among those offered."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.tail = np.full(shape, np.inf)
        self.values: dict[str, np.ndarray] = {}

    def offer(self, tail: np.ndarray, values: dict[str, np.ndarray], allowed: np.ndarray) -> None:
        rarer = allowed & (tail < self.tail)
        self.tail = np.where(rarer, tail, self.tail)
        for name, value in values.items():
            self.values[name] = np.where(rarer, value, self.values.get(name, np.zeros(self.tail.shape)))


def _judge(grid: _BucketGrid, history: _History, rows: np.ndarray, lookback: int, judged: int,
           width_seconds: int, rules: DetectionRules, market_entity: str) -> pd.DataFrame:
    columns = np.arange(lookback, lookback + judged)  # judged bucket j: cumulative column j + 1 is its end
    ends = grid.first + pd.to_timedelta((columns + 1) * width_seconds, unit="s")
    hour_of = ((ends.floor("h") - history.hours[0]) // pd.Timedelta(hours=1)).to_numpy()
    hour_of = np.clip(hour_of, 0, len(history.hours) - 1)
    entities = [grid.entities[row] for row in rows]
    market = np.array([entity == market_entity for entity in entities])[:, None]
    cells = (len(rows), judged)
    own_t = np.broadcast_to(history.own_exposure_days[hour_of][None, :], cells)
    beta = rules.prior_weight_seconds / DAY_SECONDS
    looks = len(SERIES)

    chosen, rarest_firing = _Rarest(cells), _Rarest(cells)
    hot = np.zeros(cells, dtype=bool)
    for code, series in enumerate(SERIES):
        own_n = history.own[series][rows][:, hour_of]
        prior = history.prior_rate[series][rows][:, hour_of]
        with np.errstate(invalid="ignore", divide="ignore"):
            market_rate = own_n / np.maximum(own_t, MARKET_MIN_HISTORY_DAYS)
            alpha = np.where(market, market_rate, prior) * beta
            usable = np.where(market, own_t >= MARKET_MIN_HISTORY_DAYS, np.isfinite(prior))
        shape = alpha + own_n
        for horizon in sorted(rules.horizons):
            end_column = columns + 1
            start_column = np.maximum(end_column - max(1, horizon // width_seconds), 0)
            observed = np.round(grid.window(series, rows, end_column, start_column), 9)
            adverse = np.round(grid.window("adverse_count", rows, end_column, start_column), 9)
            days = horizon / DAY_SECONDS
            p = (beta + own_t) / (beta + own_t + days)
            tail = np.where(usable, np.minimum(looks * negative_binomial_tail(observed, shape, p), 1.0), np.inf)
            values = {
                "series": np.full(cells, float(code)),
                "horizon": np.full(cells, float(horizon)),
                "observed": observed,
                "expected": shape * days / (beta + own_t),
                "baseline_stories": own_n,
                "prior_rate": prior,
                "adverse": adverse,
                "articles": grid.window("article_count", rows, end_column, start_column),
                "p_negative": grid.window("p_negative_mass", rows, end_column, start_column),
            }
            chosen.offer(tail, values, np.ones(cells, dtype=bool))
            rarest_firing.offer(tail, values, (adverse >= rules.min_stories) & (observed > 0) & (tail <= rules.threshold))
            if horizon <= rules.hot_horizon_seconds:
                hot |= (observed > 0) & (tail <= rules.threshold * rules.hot_factor)
    # A trigger needs news: a bucket that adds adverse stories. Buckets after the last one, still
    # rare only because the story is inside the horizons, keep the alert open (hot) but notify nothing.
    fresh = grid.window("adverse_count", rows, columns + 1, columns) > 0
    triggered = np.isfinite(rarest_firing.tail) & fresh
    best = {name: np.where(triggered, rarest_firing.values[name], chosen.values[name]) for name in chosen.values}
    best_tail = np.where(triggered, rarest_firing.tail, chosen.tail)
    hot |= triggered
    picked_rows, picked_columns = np.nonzero(hot)
    if picked_rows.size == 0:
        return pd.DataFrame()

    def at(values: np.ndarray) -> np.ndarray:
        return np.broadcast_to(values, cells)[picked_rows, picked_columns]

    tails = at(best_tail)
    own_articles = history.own["article_count"][rows][:, hour_of]
    own_p_negative = history.own["p_negative_mass"][rows][:, hour_of]
    prior_p_negative = history.prior_p_negative[hour_of][None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        # Thin own history shrinks toward the market's mean p_negative (20 articles' worth of prior).
        baseline_p_negative = (own_p_negative + 20 * np.nan_to_num(prior_p_negative)) / (own_articles + 20)
        horizon_p_negative = at(best["p_negative"]) / at(best["articles"])
    own_weight = at(own_t / (beta + own_t))
    own_stories = at(history.own["story_count"][rows][:, hour_of])
    picked_entities = [entities[row] for row in picked_rows]
    is_market = np.array([entity == market_entity for entity in picked_entities])
    return pd.DataFrame({
        "entity": picked_entities,
        "rule": np.where(is_market, MARKET_RULE, COMPANY_RULE),
        "width_seconds": width_seconds,
        "bucket_start": grid.first + pd.to_timedelta(columns[picked_columns] * width_seconds, unit="s"),
        "triggered": at(triggered),
        "value": at(best["observed"]),
        "baseline": at(best["expected"]),
        "horizon_seconds": at(best["horizon"]).astype(np.int64),
        "tail_probability": tails,
        "false_alarms_per_year": tails * rules.judgements_per_year,
        "threshold": rules.threshold,
        "adverse_stories": at(best["adverse"]),
        "article_count": at(best["articles"]).astype(np.int64),
        "baseline_stories": at(best["baseline_stories"]),
        "exposure_days": at(own_t),
        "own_weight": own_weight,
        "prior_rate": np.where(is_market, np.nan, at(best["prior_rate"])),
        "mean_p_negative": horizon_p_negative,
        "baseline_p_negative": at(baseline_p_negative),
        "baseline_source": np.where((own_weight >= 0.5) & (own_stories > 0), "own", "prior"),
        "metric": np.array(["adverse_stories", "risk_event_stories"])[at(best["series"]).astype(np.int64)],
        "severity": [rules.severity(float(tail)) for tail in tails],
    })
