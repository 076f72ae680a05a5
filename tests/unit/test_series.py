"""compute_buckets against hand-built mentions: alignment, per-bucket means, and the decayed index
checked against a brute-force sum over all history (a plain loop, not the incremental form)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.series import (
    INFLUENCE_HALF_LIVES,
    DecayState,
    ScoredMention,
    SeriesConfig,
    bucket_start,
    compute_buckets,
    recompute_spans,
)
from storage.series_store import BucketRow

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
HOUR = 3600.0


def mention(at: datetime, negative: float, neutral: float, positive: float) -> ScoredMention:
    return ScoredMention(at, negative, neutral, positive)


def buckets(mentions: list[ScoredMention], width: int = 300, half_life: float = HOUR,
            previous: DecayState | None = None) -> list[BucketRow]:
    return compute_buckets(mentions, width, half_life, previous, entity="AAPL", model_version="m1")


def random_mentions(seed: int, count: int, span_hours: float) -> list[ScoredMention]:
    rng = random.Random(seed)
    result = []
    for _ in range(count):
        at = T0 + timedelta(seconds=rng.uniform(0, span_hours * 3600))
        raw = [rng.random() for _ in range(3)]
        result.append(mention(at, *(value / sum(raw) for value in raw)))
    return result


def brute_force_index(mentions: list[ScoredMention], end: datetime, half_life: float) -> tuple[float, float]:
    """Direct sum over every mention before `end`: (decay_sum, decay_weight)."""
    weighted, weight = 0.0, 0.0
    for item in mentions:
        if item.published_at < end:
            w = 2 ** (-(end - item.published_at).total_seconds() / half_life)
            weighted += w * (item.p_positive - item.p_negative)
            weight += w
    return weighted, weight


def test_no_mentions_give_no_rows() -> None:
    assert buckets([]) == []


def test_buckets_are_aligned_to_the_epoch_in_utc() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    mentions = [
        mention(datetime(2026, 3, 2, 19, 33, tzinfo=india), 0.1, 0.2, 0.7),  # 14:03 UTC
        mention(T0 + timedelta(minutes=5) - timedelta(microseconds=1), 0.1, 0.2, 0.7),
        mention(T0 + timedelta(minutes=5), 0.1, 0.2, 0.7),
        mention(T0 + timedelta(minutes=17), 0.1, 0.2, 0.7),
    ]
    five = buckets(mentions, width=300)
    assert [(row.bucket_start, row.article_count) for row in five] == [
        (T0, 2), (T0 + timedelta(minutes=5), 1), (T0 + timedelta(minutes=15), 1),
    ]
    assert all(row.bucket_start.utcoffset() == timedelta(0) for row in five)
    assert [(row.bucket_start, row.article_count) for row in buckets(mentions, width=3600)] == [(T0, 4)]
    odd = buckets(mentions, width=7)
    assert all(int(row.bucket_start.timestamp()) % 7 == 0 for row in odd)
    assert all(row.entity == "AAPL" and row.model_version == "m1" and row.width_seconds == 7 for row in odd)


def test_bucket_start_floors_before_the_epoch_too() -> None:
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert bucket_start(before_epoch, 300) == datetime(1969, 12, 31, 23, 55, tzinfo=timezone.utc)
    assert bucket_start(T0 + timedelta(seconds=299), 300) == T0


def test_bucket_means_negative_share_and_sentiment() -> None:
    mentions = [
        mention(T0 + timedelta(seconds=10), 0.4, 0.4, 0.2),  # tie negative/neutral -> negative
        mention(T0 + timedelta(seconds=20), 0.2, 0.4, 0.4),  # tie neutral/positive -> neutral
        mention(T0 + timedelta(seconds=30), 0.6, 0.1, 0.3),  # negative
        mention(T0 + timedelta(seconds=40), 0.1, 0.1, 0.8),  # positive
    ]
    [row] = buckets(mentions)
    assert row.article_count == 4
    assert row.mean_p_negative == pytest.approx((0.4 + 0.2 + 0.6 + 0.1) / 4)
    assert row.mean_p_neutral == pytest.approx((0.4 + 0.4 + 0.1 + 0.1) / 4)
    assert row.mean_p_positive == pytest.approx((0.2 + 0.4 + 0.3 + 0.8) / 4)
    assert row.negative_share == pytest.approx(2 / 4)
    assert row.mean_sentiment == pytest.approx(((0.2 - 0.4) + (0.4 - 0.2) + (0.3 - 0.6) + (0.8 - 0.1)) / 4)


def test_index_weighs_articles_by_their_age_at_the_bucket_end() -> None:
    a = mention(T0, 0.9, 0.1, 0.0)  # sentiment -0.9, bucket [T0, T0+5m)
    b = mention(T0 + timedelta(minutes=5), 0.0, 0.0, 1.0)  # +1.0, exactly on the next bucket's start
    c = mention(T0 + timedelta(minutes=65), 0.2, 0.8, 0.0)  # -0.2, after eleven empty buckets
    first, second, third = buckets([a, b, c])
    assert first.decay_weight == pytest.approx(2 ** (-300 / HOUR))
    assert first.emotion_index == pytest.approx(-0.9)
    w_a, w_b = 2 ** (-600 / HOUR), 2 ** (-300 / HOUR)
    assert second.decay_weight == pytest.approx(w_a + w_b)
    assert second.emotion_index == pytest.approx((-0.9 * w_a + 1.0 * w_b) / (w_a + w_b))
    w_a, w_b, w_c = 2 ** (-4200 / HOUR), 2 ** (-3900 / HOUR), 2 ** (-300 / HOUR)
    assert third.decay_sum == pytest.approx(-0.9 * w_a + 1.0 * w_b - 0.2 * w_c)
    assert third.decay_weight == pytest.approx(w_a + w_b + w_c)


@pytest.mark.parametrize(("width", "half_life"), [(300, HOUR), (3600, HOUR), (300, 600.0), (60, 7 * 86400.0)])
def test_decayed_index_equals_a_direct_sum_over_all_history(width: int, half_life: float) -> None:
    mentions = random_mentions(seed=width, count=200, span_hours=6)
    mentions += random_mentions(seed=width + 1, count=20, span_hours=1)  # a denser first hour
    mentions = [m for m in mentions if not (T0 + timedelta(hours=2) <= m.published_at < T0 + timedelta(hours=4))]
    rows = buckets(mentions, width, half_life)
    assert sum(row.article_count for row in rows) == len(mentions)
    assert [row.bucket_start for row in rows] == sorted({bucket_start(m.published_at, width) for m in mentions})
    for row in rows:
        decay_sum, decay_weight = brute_force_index(mentions, row.bucket_start + timedelta(seconds=width), half_life)
        assert row.decay_sum == pytest.approx(decay_sum, rel=1e-12, abs=1e-300)
        assert row.decay_weight == pytest.approx(decay_weight, rel=1e-12)
        assert row.emotion_index == pytest.approx(decay_sum / decay_weight, rel=1e-12, abs=1e-15)


def test_continuing_from_a_decay_state_equals_computing_from_scratch() -> None:
    mentions = random_mentions(seed=7, count=150, span_hours=5)
    whole = buckets(mentions)
    cut = T0 + timedelta(hours=3)
    head = buckets([m for m in mentions if m.published_at < cut])
    last = head[-1]
    state = DecayState(last.bucket_start + timedelta(seconds=300), last.decay_sum, last.decay_weight)
    tail = buckets([m for m in mentions if m.published_at >= cut], previous=state)
    assert len(head) + len(tail) == len(whole)
    for continued, scratch in zip(head + tail, whole, strict=True):
        assert continued.bucket_start == scratch.bucket_start
        assert continued.article_count == scratch.article_count
        for name in ("emotion_index", "decay_sum", "decay_weight", "mean_sentiment", "negative_share"):
            assert getattr(continued, name) == pytest.approx(getattr(scratch, name), rel=1e-12, abs=1e-15)


def test_adding_later_articles_to_a_stored_bucket_equals_computing_from_scratch() -> None:
    mentions = random_mentions(seed=9, count=150, span_hours=5)
    whole = buckets(mentions)
    cut = T0 + timedelta(hours=3, minutes=2, seconds=30)  # inside a bucket: the later articles join it
    head = buckets([m for m in mentions if m.published_at < cut])
    tail = compute_buckets([m for m in mentions if m.published_at >= cut], 300, HOUR, None, entity="AAPL",
                           model_version="m1", into=head[-1])
    assert tail[0].bucket_start == head[-1].bucket_start
    assert len(head) - 1 + len(tail) == len(whole)
    for added, scratch in zip(head[:-1] + tail, whole, strict=True):
        assert added.bucket_start == scratch.bucket_start
        assert added.article_count == scratch.article_count
        assert added.latest_published_at == scratch.latest_published_at
        for name in ("emotion_index", "decay_sum", "decay_weight", "mean_p_negative", "mean_p_neutral",
                     "mean_p_positive", "mean_sentiment", "negative_share", "story_count", "adverse_count"):
            assert getattr(added, name) == pytest.approx(getattr(scratch, name), rel=1e-12, abs=1e-15)


def test_only_later_articles_are_added_to_a_stored_bucket() -> None:
    [stored] = buckets([mention(T0 + timedelta(minutes=2), 0.1, 0.2, 0.7)])
    for at, problem in ((T0 + timedelta(minutes=1), "at or after"), (T0 + timedelta(minutes=2), "at or after"),
                        (T0 + timedelta(minutes=7), "is not the first bucket")):
        with pytest.raises(ValueError, match=problem):
            compute_buckets([mention(at, 0.3, 0.3, 0.4)], 300, HOUR, None, entity="AAPL", model_version="m1", into=stored)


def test_input_order_does_not_matter() -> None:
    mentions = random_mentions(seed=3, count=60, span_hours=2)
    assert buckets(list(reversed(mentions))) == buckets(sorted(mentions, key=lambda m: m.published_at))


def test_a_decay_state_that_overlaps_the_mentions_is_refused() -> None:
    state = DecayState(T0 + timedelta(minutes=10), 0.1, 0.5)
    with pytest.raises(ValueError, match="overlaps the first bucket"):
        buckets([mention(T0 + timedelta(minutes=6), 0.1, 0.2, 0.7)], previous=state)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        ScoredMention(datetime(2026, 3, 2, 14, 0), 0.1, 0.2, 0.7)


def test_config_defaults_and_checks() -> None:
    assert SeriesConfig() == SeriesConfig(widths=(300, 3600), half_life_seconds=3600.0)
    with pytest.raises(ValueError, match="positive whole seconds"):
        SeriesConfig(widths=(0,))
    with pytest.raises(ValueError, match="positive number of seconds"):
        SeriesConfig(half_life_seconds=0)
    with pytest.raises(ValueError, match="underflow"):
        SeriesConfig(widths=(86400,), half_life_seconds=1)


def test_recompute_spans_reach_the_influence_horizon_and_merge() -> None:
    half_life = 3600.0
    live = datetime(2026, 3, 2, 14, 7, tzinfo=timezone.utc)
    late = live - timedelta(days=30)
    reach = timedelta(seconds=INFLUENCE_HALF_LIVES * half_life + 300)  # 60 hours: longer than a story's day
    spans = recompute_spans([live, late, live + timedelta(minutes=1)], 300, half_life)
    assert spans == [
        (bucket_start(late, 300), bucket_start(late + reach, 300) + timedelta(seconds=300)),
        (bucket_start(live, 300), bucket_start(live + timedelta(minutes=1) + reach, 300) + timedelta(seconds=300)),
    ]
    assert recompute_spans([datetime(9998, 12, 31, tzinfo=timezone.utc)], 3600, half_life)[0][1].year == 9999
