"""Cost of the bucket update inside the worker's transaction, against a real PostgreSQL.

What it measures
    A simulated stream of --batches batches of --batch-size articles, event times one second
    apart (so each batch is about four minutes of news), each article about one or two of the
    shipped tickers and always about the market entity, scored by one model version. Each batch's
    articles and scores are written first (not timed), then `update_series` runs in the same
    transaction (timed: locks, reads of mentions and decay state, arithmetic, one upsert) for the
    default widths 5m and 1h. The stream runs twice on empty tables: as the worker runs it (each
    batch appended to its entities' latest buckets) and, the baseline, re-reading every touched
    bucket on each batch (as rows from before migration 0007 are). It prints the median, 95th
    percentile and last tenth's median per batch for both (a re-read grows as the market entity's
    hour fills), the rows written per batch, and how far the two tables differ.
    Then one LATE article about the market entity, --late-hours in the past, forces a
    recomputation of every market bucket from its bucket onwards: it prints that time too (the
    price of exact results under late data grows with how late and how busy the entity is).

How to run
    .venv/bin/python bench/series.py [--batches 60] [--batch-size 256] [--late-hours 4]

    It starts an embedded PostgreSQL in a temporary directory and removes it afterwards;
    `--database-url URL` (or FINSENT_BENCH_DATABASE_URL) uses a scratch database instead (its
    finsent tables are truncated first).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import cast

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, Table

from pipeline.entities import load_entities
from pipeline.series import SeriesConfig, update_series
from pipeline.stories import story_key
from storage.embedded import EmbeddedPostgres
from storage.engine import make_engine
from storage.migrate import upgrade
from storage.models import ArticleScore
from storage.reset import empty_all_tables
from storage.writes import ArticleRecord, EntityMention, insert_ignoring_duplicates, write_articles

MODEL_VERSION = "bench"
MARKET = "MARKET"
START = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)


def write_batch(connection: Connection, records: list[ArticleRecord], rng: random.Random) -> None:
    write_articles(connection, records)
    probabilities = []
    for _ in records:
        raw = [rng.random() for _ in range(3)]
        probabilities.append([value / sum(raw) for value in raw])
    insert_ignoring_duplicates(connection, cast(Table, ArticleScore.__table__), {
        "article_id": [r.id for r in records],
        "model_version": [MODEL_VERSION] * len(records),
        "p_negative": [p[0] for p in probabilities],
        "p_neutral": [p[1] for p in probabilities],
        "p_positive": [p[2] for p in probabilities],
        "sentiment": [p[2] - p[0] for p in probabilities],
        "label": [("negative", "neutral", "positive")[p.index(max(p))] for p in probabilities],
        "chunks": [1] * len(records),
    })


def touched_by(records: list[ArticleRecord]) -> dict[str, list[datetime]]:
    touched: dict[str, list[datetime]] = {}
    for record in records:
        for mention in record.entities:
            touched.setdefault(mention.entity, []).append(record.published_at)
    return touched


def make_record(index: int, at: datetime, tickers: list[str], rng: random.Random) -> ArticleRecord:
    chosen = rng.sample(tickers, rng.choice((1, 1, 2)))
    mentions = tuple(EntityMention(t, "tickers") for t in chosen) + (EntityMention(MARKET, "market"),)
    headline = f"headline {index}"
    return ArticleRecord(f"bench-{index}", at, headline, "", "bench", None, "en", mentions, story_key(headline))


def stream(engine: Engine, batches: int, batch_size: int, tickers: list[str], config: SeriesConfig,
           re_read: bool) -> tuple[list[float], list[int]]:
    """The simulated stream on empty tables; per batch, the update's seconds and rows written.
    `re_read`: before each update its entities' buckets lose `latest_published_at` (untimed), so
    every batch re-reads them, as rows from before migration 0007 are: the baseline."""
    empty_all_tables(engine)
    rng = random.Random(0)
    durations, rows_written = [], []
    label = "re-reading" if re_read else "appending"
    for batch in range(batches):
        records = [
            make_record(n, START + timedelta(seconds=n), tickers, rng)
            for n in range(batch * batch_size, (batch + 1) * batch_size)
        ]
        touched = touched_by(records)
        with engine.begin() as connection:
            write_batch(connection, records, rng)
            if re_read:
                connection.execute(sa.text("UPDATE buckets SET latest_published_at = NULL WHERE entity = ANY(:entities)"),
                                   {"entities": list(touched)})
            started = time.perf_counter()
            rows_written.append(update_series(connection, touched, MODEL_VERSION, config))
            durations.append(time.perf_counter() - started)
        print(f"\r{label}: batch {batch + 1}/{batches}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return durations, rows_written


def buckets_table(engine: Engine) -> list[tuple[float, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(
            "SELECT article_count, mean_sentiment, emotion_index, decay_sum, decay_weight, story_count FROM buckets"
            " ORDER BY entity, width_seconds, bucket_start"))]


def largest_difference(first: list[tuple[float, ...]], second: list[tuple[float, ...]]) -> float:
    """The largest relative difference between two tables of the same buckets (inf: different buckets)."""
    if len(first) != len(second):
        return math.inf
    return max((abs(a - b) / max(abs(a), abs(b), 1e-300) for x, y in zip(first, second, strict=True)
                for a, b in zip(x, y, strict=True) if a != b), default=0.0)


def _per_batch(label: str, durations: list[float], rows_written: list[int]) -> str:
    durations_ms = sorted(d * 1000 for d in durations)
    tenth = max(1, len(durations) // 10)
    p95 = durations_ms[int(0.95 * (len(durations_ms) - 1))]
    return (f"{label:<28} median {statistics.median(durations_ms):6.1f} ms   p95 {p95:6.1f} ms"
            f"   last tenth {statistics.median(d * 1000 for d in durations[-tenth:]):6.1f} ms"
            f"   rows written median {statistics.median(rows_written):.0f}")


def run(database_url: str, batches: int, batch_size: int, late_hours: float) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    config = SeriesConfig()
    tickers = [entity.ticker for entity in load_entities(None)]
    re_read = stream(engine, batches, batch_size, tickers, config, re_read=True)
    re_read_table = buckets_table(engine)
    appended = stream(engine, batches, batch_size, tickers, config, re_read=False)
    print(f"articles: {batches * batch_size} in {batches} batches of {batch_size} ({len(tickers)} tickers + {MARKET}), "
          f"{batch_size} s of news per batch")
    print("update_series per batch:")
    print(_per_batch("  re-read (before 0007)", *re_read))
    print(_per_batch("  appended", *appended))
    print(f"  the two tables differ by at most {largest_difference(re_read_table, buckets_table(engine)):.1e} (relative)")

    with engine.begin() as connection:
        # Planner statistics, as autovacuum keeps them on a running database: these tables filled
        # within seconds and had none, and without them the story-copy lookup took the wrong index
        # (8 s instead of 0.1 s for the late article below).
        connection.execute(sa.text("ANALYZE"))
    rng = random.Random(1)
    late_at = START + timedelta(seconds=batches * batch_size) - timedelta(hours=late_hours)
    late = [make_record(batches * batch_size, max(late_at, START), tickers, rng)]
    with engine.begin() as connection:
        write_batch(connection, late, rng)
        started = time.perf_counter()
        written = update_series(connection, touched_by(late), MODEL_VERSION, config)
        elapsed = time.perf_counter() - started
    with engine.connect() as connection:
        market_articles = connection.execute(
            sa.text("SELECT count(*) FROM article_entities WHERE entity = :e AND published_at >= :t"),
            {"e": MARKET, "t": late[0].published_at - timedelta(hours=1)},
        ).scalar_one()
    print(f"late article {late_hours:g} h back: {elapsed * 1000:.1f} ms, {written} rows rewritten, "
          f"about {market_articles} {MARKET} articles re-read")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--late-hours", type=float, default=4.0)
    parser.add_argument("--database-url", default=os.environ.get("FINSENT_BENCH_DATABASE_URL", ""))
    args = parser.parse_args()
    if args.database_url:
        run(args.database_url, args.batches, args.batch_size, args.late_hours)
        return
    with tempfile.TemporaryDirectory(prefix="finsent-bench-") as directory:
        server = EmbeddedPostgres(Path(directory) / "postgres", delete_on_exit=True)
        try:
            run(server.start(), args.batches, args.batch_size, args.late_hours)
        finally:
            server.stop()


if __name__ == "__main__":
    from pipeline.interruption import run_interruptible

    sys.exit(run_interruptible(main, "bench/series.py"))  # SIGTERM as Ctrl-C: the embedded PostgreSQL is stopped
