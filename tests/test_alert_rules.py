"""Detection on hand-built series: the contract of each rule, cold start included."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from pipeline.alerting.rules import DetectionRules, detect

WIDTH = 300
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)
RULES = DetectionRules()
MARKET = "MARKET"


def bucket(k: int) -> datetime:
    return T0 + timedelta(seconds=WIDTH * k)


def rows(entity: str, counts: list[int], negative_share: list[float], sentiment: list[float] | None = None,
         emotion_index: list[float] | None = None) -> pd.DataFrame:
    """Stored buckets of one entity (buckets with count 0 are not stored, as in the database)."""
    sentiment = sentiment if sentiment is not None else [0.1 - 1.2 * share for share in negative_share]
    emotion_index = emotion_index if emotion_index is not None else list(pd.Series(sentiment).ewm(halflife=12).mean())
    frame = pd.DataFrame({
        "entity": entity,
        "bucket_start": [bucket(k) for k in range(len(counts))],
        "article_count": counts,
        "mean_p_negative": negative_share,
        "negative_share": negative_share,
        "mean_sentiment": sentiment,
        "emotion_index": emotion_index,
    })
    return frame[frame["article_count"] > 0]


def steady(entity: str, buckets: int, count: int = 6, share: float = 0.1, seed: int = 1) -> pd.DataFrame:
    noise = np.random.default_rng(seed).normal(0, 0.03, buckets)
    return rows(entity, [count] * buckets, list(np.clip(share + noise, 0, 1)))


def judge(frame: pd.DataFrame, first: int, last: int, rules: DetectionRules = RULES, hot: bool = False) -> pd.DataFrame:
    """Triggered candidates (with `hot`, also the buckets past the threshold that do not trigger)."""
    found = detect(frame, WIDTH, bucket(first), bucket(last), rules, MARKET)
    return found if hot else found[found["triggered"].astype(bool)].reset_index(drop=True)


def test_a_flat_series_raises_nothing() -> None:
    frame = pd.concat([steady("AAPL", 200), steady(MARKET, 200, count=40, seed=2)])
    assert judge(frame, 60, 199).empty


def test_a_clear_spike_raises_one_spike_at_its_bucket() -> None:
    aapl = steady("AAPL", 120)
    aapl.loc[aapl["bucket_start"] == bucket(100), ["negative_share", "mean_p_negative"]] = 0.83
    frame = pd.concat([aapl, steady(MARKET, 120, count=40, seed=2)])
    spikes = judge(frame, 60, 119).query("rule == 'negative_spike'")
    assert spikes[["entity", "bucket_start"]].values.tolist() == [["AAPL", pd.Timestamp(bucket(100))]]
    spike = spikes.iloc[0]
    assert spike["baseline_source"] == "own"
    assert spike["value"] == pytest.approx(0.83)
    assert abs(spike["baseline"] - 0.1) < 0.03
    assert spike["z_score"] > RULES.spike.z
    assert spike["severity"] == "critical"
    assert spike["article_count"] == 6


def test_a_modest_spike_is_less_severe_than_a_huge_one() -> None:
    modest = steady("AAPL", 120)
    modest.loc[modest["bucket_start"] == bucket(100), "negative_share"] = 0.4
    huge = steady("MSFT", 120, seed=3)
    huge.loc[huge["bucket_start"] == bucket(100), "negative_share"] = 1.0
    found = judge(pd.concat([modest, huge, steady(MARKET, 120, count=40, seed=2)]), 100, 100)
    severity = dict(zip(found["entity"], found["severity"]))
    assert severity == {"AAPL": "warning", "MSFT": "critical"}


def test_a_slow_drift_triggers_trend_not_spike() -> None:
    """Negative share creeping up 0.0057 per bucket: never far above its own moving baseline,
    but the emotion index falls steadily."""
    buckets = 160
    frame = pd.concat([rows("BA", [6] * buckets, list(np.linspace(0.05, 0.95, buckets))), steady(MARKET, buckets, count=40)])
    found = judge(frame, 60, buckets - 1)
    assert set(found["rule"]) == {"negative_trend"}
    assert set(found["entity"]) == {"BA"}


def test_thin_volume_raises_nothing() -> None:
    thin = steady("XOM", 120, count=2)
    thin.loc[thin["bucket_start"] == bucket(100), "negative_share"] = 1.0
    frame = pd.concat([thin, steady(MARKET, 120, count=40, seed=2)])
    assert judge(frame, 60, 119).empty
    hot = judge(frame, 60, 119, hot=True)
    assert hot[["entity", "rule", "bucket_start", "triggered"]].values.tolist() == [
        ["XOM", "negative_spike", pd.Timestamp(bucket(100)), False]], "too thin to fire, but not back within its baseline"


def test_a_fall_from_a_level_resting_on_a_few_headlines_is_not_a_trend() -> None:
    """The first headlines about an entity set a noisy index; its settling down is not a trend."""
    buckets = 120
    sentiment = [0.1] * buckets
    index = [0.6] * 3 + [0.1] * (buckets - 3)
    weight = [2.0, 4.0, 6.0] + [40.0] * (buckets - 3)
    frame = rows("MSFT", [6] * buckets, [0.1] * buckets, sentiment, index).assign(decay_weight=weight)
    frame = pd.concat([frame, steady(MARKET, buckets, count=40)])
    assert judge(frame, 36, 60).empty
    founded = frame.assign(decay_weight=40.0)
    assert set(judge(founded, 36, 60)["rule"]) == {"negative_trend"}


def test_a_silent_entity_that_suddenly_gets_many_negative_articles_alerts() -> None:
    """Cold start: no history of its own, judged against the market prior."""
    market = steady(MARKET, 120, count=40, seed=2)
    burst = rows("SIVB", [12], [0.92], [-0.85], [-0.85])
    burst["bucket_start"] = bucket(100)
    found = judge(pd.concat([market, burst]), 60, 119)
    spikes = found.query("entity == 'SIVB' and rule == 'negative_spike'")
    assert len(spikes) == 1
    assert spikes.iloc[0]["baseline_source"] == "market"
    assert spikes.iloc[0]["bucket_start"] == pd.Timestamp(bucket(100))
    assert found.query("entity == 'SIVB' and rule == 'negative_buzz'").empty, "the spike already covers this story"


def test_a_silent_entity_with_one_negative_headline_raises_nothing() -> None:
    market = steady(MARKET, 120, count=40, seed=2)
    single = rows("SIVB", [1], [1.0], [-0.9], [-0.9])
    single["bucket_start"] = bucket(100)
    assert judge(pd.concat([market, single]), 60, 119).empty


def test_a_volume_burst_with_neutral_tone_is_not_buzz() -> None:
    busy = steady("NVDA", 120, count=4)
    busy.loc[busy["bucket_start"] == bucket(100), "article_count"] = 40
    found = judge(pd.concat([busy, steady(MARKET, 120, count=40, seed=2)]), 60, 119)
    assert found.empty


def test_a_volume_burst_with_negative_tone_is_buzz() -> None:
    busy = steady("NVDA", 120, count=4)
    at = busy["bucket_start"] == bucket(100)
    busy.loc[at, ["article_count", "mean_sentiment"]] = [40, -0.5]
    found = judge(pd.concat([busy, steady(MARKET, 120, count=40, seed=2)]), 60, 119)
    assert found[["entity", "rule", "bucket_start"]].values.tolist() == [["NVDA", "negative_buzz", pd.Timestamp(bucket(100))]]


def test_judging_one_bucket_at_a_time_equals_judging_all_at_once() -> None:
    """A live pass (one bucket) and a backtest (the whole range) see the same candidates."""
    aapl = steady("AAPL", 150)
    for k in (70, 71, 120):
        aapl.loc[aapl["bucket_start"] == bucket(k), "negative_share"] = 0.9
    frame = pd.concat([aapl, steady(MARKET, 150, count=40, seed=2)])
    at_once = judge(frame, 60, 149, hot=True)
    one_by_one = pd.concat([judge(frame, k, k, hot=True) for k in range(60, 150)], ignore_index=True)
    pd.testing.assert_frame_equal(at_once.reset_index(drop=True), one_by_one, check_dtype=False)
    assert len(at_once) >= 3
