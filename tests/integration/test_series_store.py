"""Buckets against the real PostgreSQL: equal to an independent pandas computation from the stored
scores, idempotent, exact under late articles, filled on read, and safe under concurrent workers."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from pipeline.series import INFLUENCE_HALF_LIVES, SeriesConfig, update_series
from storage.queries import filled_series
from storage.writes import ArticleRecord, EntityMention, write_articles

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
CONFIG = SeriesConfig(widths=(300, 3600), half_life_seconds=1800.0)
MODEL = "m1"
UPDATED_AT = sa.text("SELECT array_agg(updated_at ORDER BY entity, width_seconds, bucket_start) FROM buckets")
VALUE_COLUMNS = [
    "article_count", "mean_p_negative", "mean_p_neutral", "mean_p_positive", "negative_share",
    "mean_sentiment", "emotion_index", "decay_sum", "decay_weight",
]
SNAPSHOT_COLUMNS = ["entity", "width_seconds", "bucket_start", "model_version", *VALUE_COLUMNS]


@dataclass(frozen=True)
class Scored:
    id: str
    published_at: datetime
    entities: tuple[str, ...]
    probabilities: dict[str, tuple[float, float, float]]
    """model version -> (p_negative, p_neutral, p_positive); empty: not scored yet."""


def write_scored(connection: Connection, articles: Sequence[Scored]) -> None:
    write_articles(connection, [
        ArticleRecord(
            id=a.id, published_at=a.published_at, headline=f"headline {a.id}", body="", source="wire", url=None,
            lang="en", entities=tuple(EntityMention(e, "tickers") for e in a.entities),
        )
        for a in articles
    ])
    scores = [
        {"article_id": a.id, "model_version": version, "p_negative": neg, "p_neutral": neu, "p_positive": pos,
         "sentiment": pos - neg, "label": ("negative", "neutral", "positive")[int(np.argmax((neg, neu, pos)))]}
        for a in articles for version, (neg, neu, pos) in a.probabilities.items()
    ]
    if scores:
        connection.execute(sa.text(
            "INSERT INTO article_scores (article_id, model_version, p_negative, p_neutral, p_positive, sentiment, label, chunks)"
            " VALUES (:article_id, :model_version, :p_negative, :p_neutral, :p_positive, :sentiment, :label, 1)"
        ), scores)


def touched_by(articles: Iterable[Scored]) -> dict[str, list[datetime]]:
    touched: dict[str, list[datetime]] = {}
    for article in articles:
        for entity in article.entities:
            touched.setdefault(entity, []).append(article.published_at)
    return touched


def random_articles(seed: int, count: int, start: datetime, hours: float, prefix: str) -> list[Scored]:
    """Articles about AAPL or MSFT (and always MARKET); most scored by m1, some by m0 too, a few unscored."""
    rng = random.Random(seed)
    articles = []
    for index in range(count):
        at = start + timedelta(microseconds=rng.randrange(int(hours * 3600e6)))
        if timedelta(hours=1) <= at - start < timedelta(hours=2):
            continue  # an empty hour: the index must decay across it
        probabilities: dict[str, tuple[float, float, float]] = {}
        for version in ("m1", "m0") if index % 4 == 0 else ("m1",) if index % 9 else ():
            negative, neutral, positive = (rng.random() ** 2 for _ in range(3))
            total = negative + neutral + positive
            probabilities[version] = (negative / total, neutral / total, positive / total)
        articles.append(Scored(f"{prefix}{index}", at, (rng.choice(["AAPL", "MSFT"]), "MARKET"), probabilities))
    return articles


def snapshot(engine: Engine) -> list[tuple]:
    """The whole buckets table except updated_at, in key order."""
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(
            f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM buckets ORDER BY entity, width_seconds, bucket_start"
        ))]


def stored_frame(engine: Engine) -> pd.DataFrame:
    frame = pd.DataFrame(snapshot(engine), columns=SNAPSHOT_COLUMNS)
    frame["bucket_start"] = pd.to_datetime(frame["bucket_start"], utc=True).dt.as_unit("us")
    return frame.drop(columns="model_version")


def pandas_buckets(engine: Engine, model_version: str, config: SeriesConfig) -> pd.DataFrame:
    """The expected table, computed independently: groupby per bucket, index as a direct weighted sum."""
    scores = pd.read_sql(sa.text(
        "SELECT e.entity, e.published_at, s.p_negative, s.p_neutral, s.p_positive FROM article_entities e"
        " JOIN article_scores s ON s.article_id = e.article_id WHERE s.model_version = :version"
    ), engine, params={"version": model_version})
    scores["published_at"] = pd.to_datetime(scores["published_at"], utc=True)
    scores["sentiment"] = scores["p_positive"] - scores["p_negative"]
    scores["negative"] = scores[["p_negative", "p_neutral", "p_positive"]].idxmax(axis=1) == "p_negative"
    epoch = pd.Timestamp(0, tz="UTC")
    parts = []
    for width in config.widths:
        for entity, group in scores.groupby("entity"):
            grouped = group.assign(bucket_start=group["published_at"].dt.floor(f"{width}s")).groupby("bucket_start")
            part = grouped.agg(
                article_count=("sentiment", "size"), mean_p_negative=("p_negative", "mean"),
                mean_p_neutral=("p_neutral", "mean"), mean_p_positive=("p_positive", "mean"),
                negative_share=("negative", "mean"), mean_sentiment=("sentiment", "mean"),
            ).reset_index()
            ends = ((part["bucket_start"] - epoch).dt.total_seconds() + width).to_numpy()
            times = (group["published_at"] - epoch).dt.total_seconds().to_numpy()
            ages = ends[:, None] - times[None, :]
            weights = np.where(ages > 0, 2.0 ** (-np.clip(ages, 0, None) / config.half_life_seconds), 0.0)
            part["decay_sum"] = weights @ group["sentiment"].to_numpy()
            part["decay_weight"] = weights.sum(axis=1)
            part["emotion_index"] = part["decay_sum"] / part["decay_weight"]
            parts.append(part.assign(entity=entity, width_seconds=width))
    expected = pd.concat(parts).sort_values(["entity", "width_seconds", "bucket_start"]).reset_index(drop=True)
    expected["bucket_start"] = expected["bucket_start"].dt.as_unit("us")
    return expected[[c for c in SNAPSHOT_COLUMNS if c != "model_version"]]


def assert_matches_pandas(engine: Engine) -> None:
    pd.testing.assert_frame_equal(
        stored_frame(engine), pandas_buckets(engine, MODEL, CONFIG), check_dtype=False, rtol=1e-9, atol=1e-9
    )


def update(engine: Engine, touched: dict[str, list[datetime]]) -> int:
    with engine.begin() as connection:
        return update_series(connection, touched, MODEL, CONFIG)


def test_update_equals_a_pandas_computation_from_the_stored_scores(engine: Engine) -> None:
    articles = random_articles(seed=1, count=120, start=T0, hours=4, prefix="a")
    with engine.begin() as connection:
        write_scored(connection, articles)
    written = update(engine, touched_by(articles))
    stored = stored_frame(engine)
    assert written == len(stored) > 0
    assert set(stored["entity"]) == {"AAPL", "MSFT", "MARKET"}
    assert set(pd.DataFrame(snapshot(engine), columns=SNAPSHOT_COLUMNS)["model_version"]) == {MODEL}
    m1_scored = sum(1 for a in articles if MODEL in a.probabilities)
    market = stored[stored["entity"] == "MARKET"]
    assert market.groupby("width_seconds")["article_count"].sum().to_dict() == {300: m1_scored, 3600: m1_scored}
    assert_matches_pandas(engine)


def test_running_the_update_again_changes_nothing(engine: Engine) -> None:
    articles = random_articles(seed=2, count=60, start=T0, hours=3, prefix="a")
    with engine.begin() as connection:
        write_scored(connection, articles)
    update(engine, touched_by(articles))
    with engine.connect() as connection:
        before_updated = connection.execute(UPDATED_AT).scalar_one()
    before = snapshot(engine)
    assert update(engine, touched_by(articles)) == 0
    assert update(engine, {}) == 0
    assert update(engine, {entity: [T0 - timedelta(days=1)] for entity in touched_by(articles)}) == 0
    assert snapshot(engine) == before
    with engine.connect() as connection:
        after_updated = connection.execute(UPDATED_AT).scalar_one()
    assert after_updated == before_updated, "unchanged buckets are not rewritten"


def test_a_late_article_recomputes_only_up_to_its_influence_horizon(engine: Engine) -> None:
    articles = random_articles(seed=5, count=400, start=T0, hours=96, prefix="a")
    articles.sort(key=lambda a: a.published_at)
    for first in range(0, len(articles), 50):
        with engine.begin() as connection:
            write_scored(connection, articles[first:first + 50])
            update_series(connection, touched_by(articles[first:first + 50]), MODEL, CONFIG)
    with engine.connect() as connection:
        before = dict(connection.execute(sa.text(
            "SELECT entity || width_seconds || bucket_start, updated_at FROM buckets")).all())
    late = Scored("late", T0 + timedelta(hours=2, minutes=7), ("AAPL", "MARKET"), {MODEL: (0.9, 0.05, 0.05)})
    with engine.begin() as connection:
        write_scored(connection, [late])
        assert update_series(connection, touched_by([late]), MODEL, CONFIG) > 0
    horizon = late.published_at + timedelta(seconds=INFLUENCE_HALF_LIVES * CONFIG.half_life_seconds + 3600)
    with engine.connect() as connection:
        after = connection.execute(sa.text(
            "SELECT entity || width_seconds || bucket_start, bucket_start, updated_at FROM buckets")).all()
    changed = [start for key, start, updated in after if before.get(key) != updated]
    assert changed and all(late.published_at - timedelta(hours=1) <= start < horizon for start in changed)
    assert any(start >= horizon for _, start, _ in after), "the stream goes on past the horizon"
    assert_matches_pandas(engine)


def test_a_late_article_gives_the_same_table_as_one_pass_from_scratch(engine: Engine) -> None:
    articles = random_articles(seed=3, count=90, start=T0, hours=4, prefix="a")
    articles.sort(key=lambda a: a.published_at)
    for batch in (articles[:30], articles[30:60], articles[60:]):  # a worker keeping up with the stream
        with engine.begin() as connection:
            write_scored(connection, batch)
            update_series(connection, touched_by(batch), MODEL, CONFIG)
    late = [
        Scored("late1", T0 + timedelta(minutes=7, seconds=13), ("AAPL", "MARKET"), {MODEL: (0.8, 0.15, 0.05)}),
        Scored("late2", T0 + timedelta(minutes=80), ("MSFT", "MARKET"), {MODEL: (0.1, 0.1, 0.8)}),  # in the empty hour
    ]
    with engine.begin() as connection:
        write_scored(connection, late)
        assert update_series(connection, touched_by(late), MODEL, CONFIG) > 0
    incremental = snapshot(engine)
    assert_matches_pandas(engine)

    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE buckets"))
    update(engine, touched_by(articles + late))
    assert snapshot(engine) == incremental


def test_another_model_version_neither_feeds_nor_seeds_the_series(engine: Engine) -> None:
    old = [Scored("old", T0, ("AAPL",), {"m0": (0.9, 0.05, 0.05)})]
    new = [Scored("new", T0 + timedelta(hours=1), ("AAPL",), {MODEL: (0.1, 0.2, 0.7), "m0": (0.9, 0.05, 0.05)})]
    with engine.begin() as connection:
        write_scored(connection, old + new)
        update_series(connection, touched_by(old), "m0", CONFIG)
        update_series(connection, touched_by(new), MODEL, CONFIG)
    rows = {(r[1], r[2], r[3]): r for r in snapshot(engine)}
    [m1_five] = [r for (width, _, version), r in rows.items() if width == 300 and version == MODEL]
    assert m1_five[SNAPSHOT_COLUMNS.index("article_count")] == 1
    assert m1_five[SNAPSHOT_COLUMNS.index("emotion_index")] == pytest.approx(0.7 - 0.1)


def test_series_fills_empty_buckets_and_carries_the_index(engine: Engine) -> None:
    articles = [
        Scored("before", T0 - timedelta(minutes=12), ("AAPL",), {MODEL: (0.7, 0.2, 0.1)}),
        Scored("b0", T0 + timedelta(minutes=1), ("AAPL",), {MODEL: (0.1, 0.2, 0.7)}),
        Scored("b1", T0 + timedelta(minutes=6), ("AAPL",), {MODEL: (0.6, 0.3, 0.1)}),
        Scored("b4", T0 + timedelta(minutes=21), ("AAPL",), {MODEL: (0.2, 0.2, 0.6)}),
    ]
    with engine.begin() as connection:
        write_scored(connection, articles)
    update(engine, touched_by(articles))

    series = filled_series(engine, "AAPL", 300, T0 - timedelta(seconds=1), T0 + timedelta(minutes=30))
    assert list(series["bucket_start"]) == [T0 + timedelta(minutes=5 * k) for k in range(6)]
    assert str(series["bucket_start"].dt.tz) == "UTC"
    assert list(series["article_count"]) == [1, 1, 0, 0, 1, 0]
    stored = stored_frame(engine).set_index(["width_seconds", "bucket_start"]).loc[300]
    index = stored["emotion_index"]
    assert list(series["emotion_index"]) == [
        index[T0], index[T0 + timedelta(minutes=5)], index[T0 + timedelta(minutes=5)],
        index[T0 + timedelta(minutes=5)], index[T0 + timedelta(minutes=20)], index[T0 + timedelta(minutes=20)],
    ]
    empty = series[series["article_count"] == 0]
    for column in ("mean_p_negative", "mean_p_neutral", "mean_p_positive", "negative_share", "mean_sentiment"):
        assert empty[column].isna().all() and series[column].dtype == np.float64
    assert set(series["model_version"]) == {MODEL}

    # a window after the data starts from the index of the last stored bucket before it
    later = filled_series(engine, "AAPL", 300, T0 + timedelta(hours=2), T0 + timedelta(hours=2, minutes=10))
    assert list(later["article_count"]) == [0, 0]
    assert list(later["emotion_index"]) == [index[T0 + timedelta(minutes=20)]] * 2

    # before any data the index is unknown; another model version has no data at all
    early = filled_series(engine, "AAPL", 3600, T0 - timedelta(hours=3), T0 - timedelta(hours=1))
    assert len(early) == 2 and early["emotion_index"].isna().all() and (early["article_count"] == 0).all()
    other = filled_series(engine, "AAPL", 300, T0, T0 + timedelta(minutes=10), model_version="m0")
    assert list(other["article_count"]) == [0, 0] and other["emotion_index"].isna().all()


def test_concurrent_updates_of_one_entity_count_both_articles(engine: Engine) -> None:
    """Both transactions hold uncommitted articles before either updates: without the entity lock
    each recomputes the shared bucket from its own article only and the last commit wins."""
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        article = Scored(f"c{index}", T0 + timedelta(minutes=index), (f"T{index}", "MARKET"), {MODEL: (0.2, 0.3, 0.5)})
        try:
            with engine.begin() as connection:
                write_scored(connection, [article])
                barrier.wait()
                update_series(connection, touched_by([article]), MODEL, CONFIG)
                time.sleep(0.5)  # keep the transaction open while the other one updates
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    counts = {(r[0], r[1]): r[SNAPSHOT_COLUMNS.index("article_count")] for r in snapshot(engine) if r[0] == "MARKET"}
    assert counts == {("MARKET", 300): 2, ("MARKET", 3600): 2}
    assert_matches_pandas(engine)


def write_stories(engine: Engine, stories: list[tuple[str, datetime, str, str, float]]) -> None:
    """(id, published_at, headline, source, p_negative) about DUMPCO, scored by MODEL, bucketed."""
    from pipeline.stories import story_key
    from storage.writes import ScoreRecord, write_scores

    records = [ArticleRecord(i, at, headline, "", source, None, "en", (EntityMention("DUMPCO", "tickers"),), story_key(headline))
               for i, at, headline, source, _ in stories]
    scores = [ScoreRecord(i, MODEL, p, round(0.95 - p, 6), 0.05, "negative" if p > 0.5 else "neutral", 1)
              for i, _, _, _, p in stories]
    with engine.begin() as connection:
        write_articles(connection, records)
        write_scores(connection, scores)
        update_series(connection, {"DUMPCO": [at for _, at, _, _, _ in stories]}, MODEL, CONFIG)


def story_counts(engine: Engine) -> tuple[float, float, int]:
    with engine.connect() as connection:
        row = connection.execute(sa.text(
            "SELECT sum(story_count), sum(adverse_count), sum(article_count) FROM buckets "
            "WHERE entity = 'DUMPCO' AND width_seconds = 300")).one()
    return float(row[0]), float(row[1]), int(row[2])


def test_a_feed_dump_at_one_instant_counts_as_one_story(engine: Engine) -> None:
    dump = [(f"dump-{i}", T0, f"Old headline number {i} about DumpCo losses", "dumpfeed", 0.9) for i in range(25)]
    write_stories(engine, dump + [("live-1", T0 + timedelta(minutes=1), "DumpCo opens a plant", "wire", 0.1)])
    stories, adverse, articles = story_counts(engine)
    assert articles == 26
    assert stories == pytest.approx(2.0) and adverse == pytest.approx(1.0), "25 headlines from one feed at one instant: one story"


def test_syndicated_copies_count_once_within_a_day_and_again_after_it(engine: Engine) -> None:
    headline = "DumpCo chairman arrested in Tokyo"
    write_stories(engine, [
        ("wire-1", T0, headline, "wire-a", 0.9),
        ("wire-2", T0 + timedelta(minutes=40), f"UPDATE 1-{headline} - Reuters", "wire-b", 0.9),
        ("wire-3", T0 + timedelta(hours=5), headline.upper(), "wire-c", 0.9),
        ("later", T0 + timedelta(days=2), headline, "wire-a", 0.9),
    ])
    stories, adverse, articles = story_counts(engine)
    assert articles == 4 and stories == pytest.approx(2.0) and adverse == pytest.approx(2.0)


def test_a_late_original_turns_an_earlier_stored_copy_into_a_copy(engine: Engine) -> None:
    """Event time decides which is the copy, not arrival: the recompute covers the story's day."""
    headline = "DumpCo recalls one million cars"
    write_stories(engine, [("copy", T0 + timedelta(hours=3), headline, "wire-b", 0.9)])
    assert story_counts(engine)[0] == pytest.approx(1.0)
    write_stories(engine, [("original", T0, headline, "wire-a", 0.9)])
    stories, adverse, articles = story_counts(engine)
    assert articles == 2 and stories == pytest.approx(1.0) and adverse == pytest.approx(1.0)


def recorded_reads(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, datetime, datetime]]]:
    """The ranges of every read of scored mentions from here on (the real read still runs; one of no ranges reads nothing)."""
    import pipeline.series as series

    reads: list[list[tuple[str, datetime, datetime]]] = []
    real = series.scored_mentions_in

    def recording(connection: Connection, ranges: Sequence[tuple[str, datetime, datetime]], model_version: str) -> list:
        if ranges:
            reads.append(list(ranges))
        return real(connection, ranges, model_version)

    monkeypatch.setattr(series, "scored_mentions_in", recording)
    return reads


def values_frame(engine: Engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(sa.text(
            "SELECT entity, width_seconds, bucket_start, model_version, latest_published_at, story_count, adverse_count,"
            f" risk_count, {', '.join(VALUE_COLUMNS)} FROM buckets ORDER BY entity, width_seconds, bucket_start"), connection)


def assert_equals_a_recomputation(engine: Engine, touched: dict[str, list[datetime]]) -> None:
    """The table as it stands equals the one a single recomputation from the stored scores writes."""
    streamed = values_frame(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE buckets"))
    update(engine, touched)
    pd.testing.assert_frame_equal(streamed, values_frame(engine), check_exact=False, rtol=1e-12, atol=1e-12)


def test_an_in_order_stream_reads_only_its_own_articles_and_equals_one_pass(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A live stream: after the first batch, each batch reads its own articles (from its first one
    on, not from the start of the hour) and adds them to the latest buckets."""
    articles = sorted((a for a in random_articles(seed=11, count=300, start=T0, hours=5, prefix="s") if MODEL in a.probabilities),
                      key=lambda a: a.published_at)
    reads = recorded_reads(monkeypatch)
    for first in range(0, len(articles), 20):
        batch = articles[first:first + 20]
        with engine.begin() as connection:
            write_scored(connection, batch)
            update_series(connection, touched_by(batch), MODEL, CONFIG)
        if first:
            assert reads[-1] == [(entity, min(times), reads[-1][0][2]) for entity, times in sorted(touched_by(batch).items())], \
                "every entity of a later batch reads from its first article on"
    assert len(reads) == len(range(0, len(articles), 20)), "one read per batch"
    assert_matches_pandas(engine)
    assert_equals_a_recomputation(engine, touched_by(articles))


def test_appended_stories_count_as_a_recomputation_counts_them(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Feed dumps and syndicated copies arriving in order, batch by batch, weigh what a recomputation gives them."""
    headlines = ["DumpCo chairman arrested in Tokyo", "DumpCo recalls one million cars", "DumpCo opens a plant"]
    rng = random.Random(4)
    stream: list[tuple[str, datetime, str, str, float]] = []
    at = T0
    for index in range(120):
        at += timedelta(seconds=rng.choice([0, 0, 20, 90, 400]))  # 0: the same instant, a feed dump when one source
        stream.append((f"n{index}", at, rng.choice(headlines) if index % 3 else f"DumpCo story {index}",
                       rng.choice(["wire-a", "wire-a", "wire-b"]), rng.random()))
    reads = recorded_reads(monkeypatch)
    batches: list[list[tuple[str, datetime, str, str, float]]] = [[]]
    for story in stream:
        if len(batches[-1]) >= 7 and story[1] != batches[-1][-1][1]:  # an instant never spans two batches
            batches.append([])
        batches[-1].append(story)
    for index, batch in enumerate(batches):
        write_stories(engine, batch)
        if index:
            assert reads[-1][0][1] == batch[0][1], "a later batch reads from its first article on"
    assert_equals_a_recomputation(engine, {"DUMPCO": [story[1] for batch in batches for story in batch]})


def test_buckets_are_re_read_where_appending_would_be_wrong(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows from before migration 0007 (no latest article), another model's latest bucket, and a
    scored article the batch does not name: each is recomputed from the stored scores instead."""
    early = [Scored(f"e{i}", T0 + timedelta(minutes=i), ("AAPL", "MSFT", "NVDA", "MARKET"), {MODEL: (0.6, 0.3, 0.1)})
             for i in range(3)]
    with engine.begin() as connection:
        write_scored(connection, early)
        update_series(connection, touched_by(early), MODEL, CONFIG)
        connection.execute(sa.text("UPDATE buckets SET latest_published_at = NULL WHERE entity = 'AAPL'"))
        connection.execute(sa.text("UPDATE buckets SET model_version = 'm0' WHERE entity = 'MSFT'"))
    unnamed = Scored("unnamed", T0 + timedelta(minutes=6), ("NVDA",), {MODEL: (0.1, 0.1, 0.8)})
    later = Scored("later", T0 + timedelta(minutes=5), ("AAPL", "MSFT", "NVDA", "MARKET"), {MODEL: (0.2, 0.2, 0.6)})
    reads = recorded_reads(monkeypatch)
    with engine.begin() as connection:
        write_scored(connection, [unnamed, later])
        update_series(connection, touched_by([later]), MODEL, CONFIG)
    appended, recomputed = reads[0], [entity for entity, _, _ in reads[-1]]
    assert [entity for entity, _, _ in appended] == ["MARKET", "NVDA"]
    assert recomputed == ["AAPL", "MSFT", "NVDA"]
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT entity, article_count, latest_published_at FROM buckets WHERE width_seconds = 300"
            " AND bucket_start = :start ORDER BY entity"), {"start": T0 + timedelta(minutes=5)}).all()
    assert [tuple(row) for row in rows] == [
        ("AAPL", 1, later.published_at), ("MARKET", 1, later.published_at), ("MSFT", 1, later.published_at),
        ("NVDA", 2, unnamed.published_at),
    ]
