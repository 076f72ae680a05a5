"""Detection on small synthetic streams: counts over horizons against an expected rate with a prior."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from pipeline.alerting.candidate import candidates_from, rarity
from pipeline.alerting.lifecycle import FIRED, LifecyclePolicy, advance
from pipeline.alerting.rules import (
    COMPANY_RULE,
    MARKET_RULE,
    DetectionRules,
    detect,
    history_edges,
    negative_binomial_tail,
)

WIDTH = 300
T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
RULES = DetectionRules()
MARKET = "MARKET"
PEERS = [f"PEER{i}" for i in range(12)]


@dataclass(frozen=True)
class Article:
    entity: str
    at: datetime
    adverse: bool
    risk: bool = False
    """A risk-event story (always adverse too)."""


def steady_news(days: int, per_day: int = 3, adverse_every: int = 6, entities: list[str] = PEERS) -> list[Article]:
    """Each entity gets `per_day` articles a day at fixed hours, one in `adverse_every` adverse."""
    articles = []
    for day in range(days):
        for slot in range(per_day):
            for index, entity in enumerate(entities):
                at = T0 + timedelta(days=day, hours=8 + 4 * slot, minutes=7 * index)
                articles.append(Article(entity, at, (day * per_day + slot + index) % adverse_every == 0))
    return articles


def frames(articles: list[Article], market: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, datetime]:
    """The stored buckets and their p_negative mass, as the worker leaves them."""
    rows = []
    for article in articles:
        for entity in (article.entity, MARKET) if market else (article.entity,):
            start = pd.Timestamp(article.at).floor(f"{WIDTH}s")
            rows.append({"entity": entity, "bucket_start": start, "adverse_count": float(article.adverse),
                         "risk_count": float(article.risk), "story_count": 1.0, "article_count": 1,
                         "mean_p_negative": 0.8 if article.adverse else 0.1})
    raw = pd.DataFrame(rows)
    buckets = raw.groupby(["entity", "bucket_start"], as_index=False).agg(
        adverse_count=("adverse_count", "sum"), risk_count=("risk_count", "sum"), story_count=("story_count", "sum"),
        article_count=("article_count", "sum"),
        p_negative_mass=("mean_p_negative", "sum"))
    buckets["mean_p_negative"] = buckets["p_negative_mass"] / buckets["article_count"]
    return buckets, buckets, buckets["bucket_start"].min().to_pydatetime()


def bands(buckets: pd.DataFrame, edges: pd.DatetimeIndex) -> pd.DataFrame:
    """The sums between consecutive edges, as storage.queries.history_bands reads them (band b:
    [edges[b - 1], edges[b]))."""
    inside = buckets[(buckets["bucket_start"] >= edges[0]) & (buckets["bucket_start"] < edges[-1])]
    band = np.searchsorted(edges.to_numpy(), inside["bucket_start"].to_numpy(), side="right")
    return inside.assign(band=band).groupby(["entity", "band"], as_index=False)[
        ["adverse_count", "risk_count", "story_count", "article_count", "p_negative_mass"]].sum()


def judge(articles: list[Article], first: datetime, last: datetime, rules: DetectionRules = RULES) -> pd.DataFrame:
    buckets, _, start = frames(articles)
    history = bands(buckets, history_edges(first, last, WIDTH, rules))
    return detect(buckets.drop(columns="p_negative_mass"), history, start, WIDTH, first, last, rules, MARKET)


def triggered(candidates: pd.DataFrame, entity: str) -> pd.DataFrame:
    return candidates[(candidates["entity"] == entity) & candidates["triggered"].astype(bool)]


def burst(entity: str, start: datetime, count: int, every: timedelta) -> list[Article]:
    return [Article(entity, start + k * every, True) for k in range(count)]


def test_a_silent_entity_with_four_adverse_headlines_in_three_hours_alerts_within_hours() -> None:
    story = T0 + timedelta(days=20, hours=9)
    articles = steady_news(21) + burst("NEWCO", story, 4, timedelta(hours=1))
    found = triggered(judge(articles, story - timedelta(hours=2), story + timedelta(hours=6)), "NEWCO")
    assert not found.empty
    first = found.iloc[0]
    assert first["rule"] == COMPANY_RULE and first["baseline_source"] == "prior"
    assert first["bucket_start"] <= pd.Timestamp(story + timedelta(hours=3)), "alerts as the story builds"
    assert first["value"] >= RULES.min_stories and first["tail_probability"] <= RULES.threshold


def test_a_busy_entity_on_a_normal_day_with_four_adverse_headlines_does_not_alert() -> None:
    busy = [Article("BUSY", T0 + timedelta(days=day, hours=hour), hour in (9, 15, 18, 21))
            for day in range(28) for hour in range(8, 22)]
    candidates = judge(steady_news(28) + busy, T0 + timedelta(days=27), T0 + timedelta(days=27, hours=23))
    assert triggered(candidates, "BUSY").empty
    assert (busy_rows := candidates[candidates["entity"] == "BUSY"]).empty or busy_rows["baseline_source"].eq("own").all()


def test_fewer_than_the_least_stories_never_fires_however_rare() -> None:
    story = T0 + timedelta(days=20, hours=9)
    articles = steady_news(21) + burst("NEWCO", story, 2, timedelta(minutes=5))
    assert triggered(judge(articles, story, story + timedelta(hours=6)), "NEWCO").empty


def test_one_story_across_horizons_and_days_is_one_alert_episode() -> None:
    story = T0 + timedelta(days=20, hours=9)
    articles = steady_news(27) + burst("NEWCO", story, 12, timedelta(minutes=20)) + burst(
        "NEWCO", story + timedelta(days=1), 8, timedelta(hours=1))
    first, last = story - timedelta(hours=1), story + timedelta(days=6)
    candidates = judge(articles, first, last)
    assert set(triggered(candidates, "NEWCO")["horizon_seconds"]) >= {3600, 86400}, "several horizons trigger"
    _, transitions = advance({}, candidates_from(candidates), WIDTH, first, last, LifecyclePolicy(3, timedelta(hours=4)))
    fired = [t for t in transitions if t.kind == FIRED and t.state.entity == "NEWCO"]
    assert len(fired) == 1
    resolved = [t for t in transitions if t.kind == "resolved" and t.state.entity == "NEWCO"]
    # Open while the story is inside its horizons: resolved once three days passed without a new rare count.
    assert len(resolved) == 1 and resolved[0].bucket_start > pd.Timestamp(story + timedelta(days=3))
    assert rarity(resolved[0].state.peak) <= rarity(fired[0].state.first) < 1


def test_the_baseline_leaves_out_the_story_being_judged() -> None:
    story = T0 + timedelta(days=20, hours=9)
    articles = steady_news(23) + burst("NEWCO", story, 3, timedelta(hours=10)) + burst(
        "NEWCO", story + timedelta(hours=40), 3, timedelta(minutes=30))
    found = triggered(judge(articles, story, story + timedelta(days=2)), "NEWCO")
    assert not found.empty and (found["baseline_stories"] == 0).all(), "earlier articles of the story stay out"


def test_nothing_is_judged_before_an_hour_of_history_exists() -> None:
    articles = burst("NEWCO", T0, 6, timedelta(minutes=5)) + steady_news(1)
    candidates = judge(articles, T0, T0 + timedelta(minutes=50))  # the last bucket ends 55 minutes in
    assert candidates.empty


def test_the_market_is_its_own_class_judged_on_its_own_history() -> None:
    crash = T0 + timedelta(days=15, hours=10)
    articles = steady_news(16) + [Article(entity, crash + timedelta(minutes=2 * k), True)
                                  for k, entity in enumerate(PEERS * 2)]
    candidates = judge(articles, crash, crash + timedelta(hours=3))
    market = triggered(candidates, MARKET)
    assert not market.empty and set(market["rule"]) == {MARKET_RULE}
    assert market["prior_rate"].isna().all() and (market["baseline_source"] == "own").all()


def test_a_cold_market_is_not_judged() -> None:
    articles = steady_news(1) + burst("NEWCO", T0 + timedelta(hours=20), 30, timedelta(minutes=1))
    assert triggered(judge(articles, T0 + timedelta(hours=20), T0 + timedelta(hours=21)), MARKET).empty


def test_severity_is_rarity_against_the_alarm_budget() -> None:
    threshold = RULES.threshold
    assert RULES.severity(threshold) == "warning"
    assert RULES.severity(threshold / 10) == "major"
    assert RULES.severity(threshold / 100) == "critical"
    assert math.isclose(threshold * RULES.judgements_per_year, RULES.false_alarms_per_year)


def test_the_tail_is_the_negative_binomial_survival_function() -> None:
    shape, p = 2.5, 0.9
    for observed in (1, 3, 7):
        pmf = [math.exp(math.lgamma(k + shape) - math.lgamma(shape) - math.lgamma(k + 1) + shape * math.log(p)
                        + k * math.log(1 - p)) for k in range(observed)]
        expected = 1 - sum(pmf)
        got = float(negative_binomial_tail(np.array([observed]), np.array([shape]), np.array([p]))[0])
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-15)
    assert negative_binomial_tail(np.array([0.0]), np.array([shape]), np.array([p]))[0] == 1.0


def test_a_tighter_budget_moves_the_threshold_and_never_adds_alerts() -> None:
    story = T0 + timedelta(days=20, hours=9)
    articles = steady_news(21) + burst("NEWCO", story, 4, timedelta(hours=1))
    loose = triggered(judge(articles, story, story + timedelta(hours=6)), "NEWCO")
    strict_rules = DetectionRules(false_alarms_per_year=0.001)
    strict = triggered(judge(articles, story, story + timedelta(hours=6), strict_rules), "NEWCO")
    assert len(strict) <= len(loose)
    assert (strict["tail_probability"] <= strict_rules.threshold).all()


def test_risk_event_stories_are_rare_sooner_than_plain_negative_ones() -> None:
    """A busy entity with plenty of ordinary negative news: three stories that name a risk event
    (an arrest, a bankruptcy) are rare for it; three more ordinary negative ones are not."""
    busy = [Article("BUSY", T0 + timedelta(days=day, hours=hour), hour in (9, 15, 18, 21))
            for day in range(28) for hour in range(8, 22)]
    day = T0 + timedelta(days=27, hours=9, minutes=30)
    plain = [Article("BUSY", day + timedelta(hours=k), True) for k in range(3)]
    risky = [Article("BUSY", day + timedelta(hours=k), True, risk=True) for k in range(3)]
    first, last = day, day + timedelta(hours=6)
    assert triggered(judge(steady_news(28) + busy + plain, first, last), "BUSY").empty
    found = triggered(judge(steady_news(28) + busy + risky, first, last), "BUSY")
    assert not found.empty and set(found["metric"]) == {"risk_event_stories"}
