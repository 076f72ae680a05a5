"""How detection scales with the number of entities: 7 days of 5-minute buckets per entity.

What it measures, for each --entities count (default 1,000 and 10,000):
    history   a synthetic week of 5-minute buckets per entity (about 70% of buckets hold articles,
              Poisson counts, noisy negative share) plus the market entity.
    live      one detection pass judging the newest bucket:
              - finsent: `rules.detect` on the lookback window (vectorised over all entities);
              - baseline: the straightforward way, a pandas loop per entity computing median and
                MAD over its last 48 buckets and checking the spike rule, in the same run;
              - with --database: `DetectionPass.run()` end to end on a real PostgreSQL holding
                the whole week (index range read, detection, lifecycle, one transaction).
    backtest  `rules.detect` judging every bucket of the week at once (what `finsent backtest`
              computes), and its throughput in entity-buckets per second.

How to run
    .venv/bin/python bench/alerts.py [--entities 1000 10000] [--days 7] [--database]

    --database starts an embedded PostgreSQL in a temporary directory (or uses
    --database-url / FINSENT_BENCH_DATABASE_URL, whose finsent tables are truncated) and loads the
    week with COPY; loading 10,000 entities (20 million rows) takes several minutes.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from progress_display import progress
from pipeline.alerting.detection_pass import DetectionPass, DetectionSchedule
from pipeline.alerting.lifecycle import LifecyclePolicy
from pipeline.alerting.rules import MAD_TO_SIGMA, SPIKE_SCALE_FLOOR, DetectionRules, detect

WIDTH = 300
MARKET = "MARKET"
END = datetime(2026, 3, 9, tzinfo=timezone.utc)
RULES = DetectionRules()


def synthetic_week(entities: int, days: int, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    buckets = days * 86400 // WIDTH
    starts = pd.date_range(END - timedelta(seconds=WIDTH * buckets), periods=buckets, freq=f"{WIDTH}s", tz="UTC")
    names = [f"E{index:05d}" for index in range(entities)] + [MARKET]
    counts = rng.poisson(1.5, size=(len(names), buckets))
    counts[-1] = rng.poisson(40, size=buckets)
    share = np.clip(rng.normal(0.15, 0.08, size=counts.shape), 0, 1)
    sentiment = np.clip(0.1 - share + rng.normal(0, 0.05, size=counts.shape), -1, 1)
    emotion = pd.DataFrame(sentiment).T.ewm(halflife=12).mean().T.to_numpy()
    rows, columns = np.nonzero(counts)
    return pd.DataFrame({
        "entity": np.asarray(names)[rows],
        "bucket_start": starts[columns],
        "article_count": counts[rows, columns],
        "mean_p_negative": share[rows, columns],
        "negative_share": share[rows, columns],
        "mean_sentiment": sentiment[rows, columns],
        "emotion_index": emotion[rows, columns],
    })


def naive_live_pass(window: pd.DataFrame, newest: pd.Timestamp) -> int:
    """Per-entity loop: median and MAD of the previous buckets, spike rule on the newest one."""
    alerts = 0
    for _entity, rows in window.groupby("entity"):
        history = rows[rows["bucket_start"] < newest]["negative_share"].tail(RULES.baseline_buckets)
        current = rows[rows["bucket_start"] == newest]
        if current.empty or len(history) < RULES.min_history:
            continue
        median = history.median()
        scale = max(MAD_TO_SIGMA * (history - median).abs().median(), SPIKE_SCALE_FLOOR)
        value = float(current["negative_share"].iloc[0])
        if (current["article_count"].iloc[0] >= RULES.spike.min_articles and value - median >= RULES.spike.min_rise
                and (value - median) / scale >= RULES.spike.z):
            alerts += 1
    return alerts


def timed(function, *args):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def database_pass(frame: pd.DataFrame, url: str | None) -> tuple[float, float, int]:
    """(load seconds, pass seconds, candidates) of a live pass on a real PostgreSQL holding `frame`."""
    from storage.embedded import EmbeddedPostgres
    from storage.engine import make_engine
    from storage.migrate import upgrade
    from storage.models import Article
    from storage.reset import empty_all_tables

    embedded = None
    with tempfile.TemporaryDirectory(prefix="finsent-bench-alerts-") as scratch:
        if not url:
            embedded = EmbeddedPostgres(Path(scratch) / "data", delete_on_exit=True)
            url = embedded.start()
        engine = make_engine(url)
        try:
            upgrade(engine)
            empty_all_tables(engine)
            started = time.perf_counter()
            _copy_timesteps(engine, frame)
            loaded = time.perf_counter() - started
            newest = frame["bucket_start"].max().to_pydatetime()
            lateness = timedelta(minutes=2)
            watermark = newest + timedelta(seconds=WIDTH) + lateness + timedelta(seconds=1)
            with engine.begin() as connection:  # the newest article: the event-time watermark closes `newest`
                connection.execute(sa.insert(Article).values(id="bench-watermark", published_at=watermark, headline="x",
                                                             body="", ingested_at=watermark))
            detection = DetectionPass(
                engine, RULES, LifecyclePolicy(), DetectionSchedule((WIDTH,), lateness, timedelta(minutes=10), MARKET),
                route=lambda _entity, _severity: [], clock=lambda: watermark,
            )
            detection.run()  # the first pass judges a day of buckets; the timed one judges what closed since
            with engine.begin() as connection:
                connection.exec_driver_sql("UPDATE detection_progress SET evaluated_through = evaluated_through - interval '5 minutes'")
            report, seconds = timed(detection.run)
            assert report.judged, "the timed pass judged nothing"
            return loaded, seconds, report.candidates
        finally:
            engine.dispose()
            if embedded is not None:
                embedded.stop()


def _copy_timesteps(engine, frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    columns = ["entity", "width_seconds", "bucket_start", "model_version", "article_count", "mean_p_negative",
               "mean_p_neutral", "mean_p_positive", "negative_share", "mean_sentiment", "emotion_index",
               "decay_sum", "decay_weight"]
    chunk_rows = 500_000
    bar = progress(len(frame), "loading timesteps", "rows")
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for start in range(0, len(frame), chunk_rows):
            part = frame.iloc[start:start + chunk_rows]
            table = pd.DataFrame({
                "entity": part["entity"], "width_seconds": WIDTH, "bucket_start": part["bucket_start"].dt.strftime("%Y-%m-%d %H:%M:%S+00"),
                "model_version": "bench", "article_count": part["article_count"], "mean_p_negative": part["mean_p_negative"],
                "mean_p_neutral": 1 - part["mean_p_negative"], "mean_p_positive": 0.0, "negative_share": part["negative_share"],
                "mean_sentiment": part["mean_sentiment"], "emotion_index": part["emotion_index"],
                "decay_sum": part["emotion_index"], "decay_weight": 1.0,
            })
            buffer = io.StringIO()
            table.to_csv(buffer, index=False, header=False)
            with cursor.copy(f"COPY timesteps ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(buffer.getvalue())
            bar.update(len(part))
        raw.commit()
        cursor.execute("ANALYZE timesteps")
        raw.commit()
    finally:
        bar.close()
        raw.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--database", action="store_true", help="also time a live pass on a real PostgreSQL")
    parser.add_argument("--database-url", default=os.environ.get("FINSENT_BENCH_DATABASE_URL", ""))
    arguments = parser.parse_args()
    print(f"detection, {arguments.days} days of {WIDTH // 60}-minute buckets per entity; "
          f"lookback {RULES.lookback_buckets} buckets", flush=True)
    for entities in arguments.entities:
        frame, build_s = timed(synthetic_week, entities, arguments.days)
        newest = frame["bucket_start"].max()
        first_judged = newest - pd.Timedelta(seconds=WIDTH * (RULES.lookback_buckets + 1))
        window = frame[frame["bucket_start"] >= first_judged]
        live, live_s = timed(detect, window, WIDTH, newest.to_pydatetime(), newest.to_pydatetime(), RULES, MARKET)
        naive, naive_s = timed(naive_live_pass, window, newest)
        week_start = frame["bucket_start"].min() + pd.Timedelta(seconds=WIDTH * RULES.lookback_buckets)
        week, week_s = timed(detect, frame, WIDTH, week_start.to_pydatetime(), newest.to_pydatetime(), RULES, MARKET)
        judged = entities * int((newest - week_start) / pd.Timedelta(seconds=WIDTH) + 1)
        print(f"\n{entities:,} entities: {len(frame):,} stored buckets (built in {build_s:.1f}s)")
        print(f"  live pass, newest bucket    finsent detect {live_s * 1000:9.1f} ms   "
              f"per-entity pandas loop {naive_s * 1000:9.1f} ms   ({naive_s / live_s:.1f}x)   "
              f"spike candidates {int(((live['rule'] == 'negative_spike') & live['triggered'].astype(bool)).sum())} vs {naive}")
        print(f"  backtest, whole week        finsent detect {week_s:9.2f} s    "
              f"{judged / week_s:,.0f} entity-buckets/s   candidates {int(week['triggered'].sum()) if len(week) else 0:,}")
        if arguments.database:
            loaded_s, pass_s, candidates = database_pass(frame, arguments.database_url)
            print(f"  live pass on PostgreSQL     DetectionPass.run {pass_s * 1000:7.1f} ms   "
                  f"(week loaded with COPY in {loaded_s:.0f}s; candidates {candidates})")
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  peak RSS so far {peak_mib:,.0f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    from pipeline.interruption import run_interruptible

    sys.exit(run_interruptible(main, "bench/alerts.py"))  # SIGTERM as Ctrl-C: the embedded PostgreSQL is stopped
