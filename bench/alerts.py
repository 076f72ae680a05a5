"""What detection costs on realistic sparse news: a live pass for many entities, and a long backtest.

What it measures
    history   synthetic news written straight into `buckets` (5-minute buckets, only the buckets
              that hold news, as the worker stores them): each entity gets a few stories a day,
              Poisson around a log-normal per-entity rate (median 2 a day; a few entities carry
              dozens), more during market hours, a quarter of them adverse, some risk-tagged, a
              story syndicated into 1-3 articles; the market entity holds every story. A few
              entities get a burst (5 adverse stories in 3 hours), so alerts fire and the
              lifecycle and the alert store do real work.
    live      one `DetectionPass.run()` judging only the newest closed bucket (detection_progress
              set to the bucket before), with the default rules (28-day trailing window + 3-day
              horizon), END TO END: advisory lock, watermark, the reads, detection, lifecycle,
              storing alerts, one commit. Beside it, its parts called directly with the arguments
              `judging.judge_span` passes: the reads (`buckets_window`, `history_bands`,
              `first_bucket`), `rules.detect`, `lifecycle.advance`; and, as baselines for the
              reads, the raw SQL over the same rows: `count(*)` of each range (the scan), and the
              per-hour GROUP BY of the whole history (what reading the trailing window hour by
              hour costs, counted on the server and fetched by the bare driver), against which
              `history_bands` (one summed band per entity between the windows' edges) is measured.
              Read it as: pass ~= reads + detect + lifecycle + store.
              The baseline column is the same pass for a tenth of the entities, in the same run.
              The issue's target: <= 2 s end to end for 10,000 entities.
    backtest  `run_backtest` over every bucket of --backtest-months months of --backtest-tickers
              tickers (same generator), with where its time goes (the same functions, timed by
              wrapping them inside `judging`) and the raw SQL count of the span beside it.
              The issue's target: "runs in minutes".

    Each live figure is the median of --repeats runs (alerts and progress reset between them).
    No figure is asserted: this prints, a person reads.

How to run
    .venv/bin/python bench/alerts.py [--entities 10000] [--days 31] [--backtest-months 16]
                                     [--backtest-tickers 60] [--repeats 3] [--database-url URL]

    It starts an embedded PostgreSQL in a temporary directory and removes it afterwards;
    `--database-url URL` (or FINSENT_BENCH_DATABASE_URL) uses a scratch database instead: its
    finsent tables are TRUNCATED. Loading 10,000 entities x 31 days (about a million rows) takes
    a minute or two on 2 cores. `--backtest-months 0` skips the backtest.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import sqlalchemy as sa
from progress_display import progress
from sqlalchemy import Engine

from pipeline.alerting import judging
from pipeline.alerting.backtest import run_backtest
from pipeline.alerting.candidate import candidates_from
from pipeline.alerting.detection_pass import DetectionPass, DetectionSchedule
from pipeline.alerting.lifecycle import LifecyclePolicy, advance
from pipeline.alerting.rules import DetectionRules, detect, history_edges
from storage.embedded import EmbeddedPostgres
from storage.engine import make_engine
from storage.migrate import upgrade
from storage.models import Article
from storage.queries import buckets_window, first_bucket, history_bands
from storage.reset import empty_all_tables

WIDTH = 300
STEP = timedelta(seconds=WIDTH)
BUCKETS_PER_DAY = 86400 // WIDTH
MARKET = "MARKET"
END = datetime(2026, 3, 9, tzinfo=timezone.utc)
"""The end of the newest bucket of every synthetic history."""
LATENESS = timedelta(minutes=2)
RULES = DetectionRules()
POLICY = LifecyclePolicy()
MODEL_VERSION = "bench"
T = TypeVar("T")

COPY_COLUMNS = [
    "entity", "width_seconds", "bucket_start", "model_version", "article_count", "mean_p_negative", "mean_p_neutral",
    "mean_p_positive", "negative_share", "mean_sentiment", "emotion_index", "decay_sum", "decay_weight",
    "story_count", "adverse_count", "risk_count",
]


# ---- synthetic history -------------------------------------------------------------------------


def _intraday_profile() -> np.ndarray:
    """Share of a day's stories per 5-minute slot: news clusters in US market hours (13-21 UTC)."""
    hours = np.arange(BUCKETS_PER_DAY) * WIDTH / 3600
    weight = np.where((hours >= 13) & (hours < 21), 1.0, 0.25)
    return weight / weight.sum()


def _stories(rng: np.random.Generator, entities: int, days: int) -> pd.DataFrame:
    """One row per story: entity code, bucket index, articles, adverse, risk, p_negative."""
    rates = np.minimum(rng.lognormal(np.log(2.0), 1.0, entities), 200.0)  # stories a day: median 2, heavy tail
    owner = np.repeat(np.arange(entities), rng.poisson(rates * days))
    bucket = rng.integers(0, days, owner.size) * BUCKETS_PER_DAY + rng.choice(
        BUCKETS_PER_DAY, owner.size, p=_intraday_profile())
    adverse = rng.random(owner.size) < 0.25
    return pd.DataFrame({
        "entity": owner, "bucket": bucket, "articles": 1 + rng.binomial(2, 0.2, owner.size),
        "adverse": adverse, "risk": adverse & (rng.random(owner.size) < 0.15),
        "p_negative": np.where(adverse, rng.beta(6, 3, owner.size), rng.beta(1.5, 8, owner.size)),
    })


def _bursts(rng: np.random.Generator, entities: int, ends: np.ndarray) -> pd.DataFrame:
    """A story breaking: 5 adverse stories (2 naming a risk event) over 3 hours, ending at `ends`."""
    owners = rng.choice(entities, ends.size, replace=False) if ends.size <= entities else rng.integers(0, entities, ends.size)
    offsets = np.array([-36, -24, -12, -4, 0])  # buckets before the burst's last story
    count = ends.size * offsets.size
    return pd.DataFrame({
        "entity": np.repeat(owners, offsets.size), "bucket": (ends[:, None] + offsets[None, :]).ravel(),
        "articles": np.full(count, 2), "adverse": np.ones(count, dtype=bool),
        "risk": np.tile(offsets >= -4, ends.size), "p_negative": rng.beta(8, 2, count),
    })


def _buckets(stories: pd.DataFrame, names: np.ndarray, start: datetime) -> pd.DataFrame:
    """Stories summed into stored 5-minute buckets, with every buckets column filled plausibly."""
    stories = stories.assign(
        mass=stories["articles"] * stories["p_negative"],
        negative_articles=stories["articles"] * (stories["p_negative"] > 0.5),
    )
    summed = stories.groupby(["entity", "bucket"], sort=False).agg(
        story_count=("articles", "size"), article_count=("articles", "sum"), adverse_count=("adverse", "sum"),
        risk_count=("risk", "sum"), mass=("mass", "sum"), negative_articles=("negative_articles", "sum"),
    ).reset_index()
    p_negative = summed["mass"] / summed["article_count"]
    p_positive = (1 - p_negative) * 0.3
    sentiment = p_positive - p_negative
    return pd.DataFrame({
        "entity": names[summed["entity"].to_numpy()],
        "bucket_start": pd.Timestamp(start) + pd.to_timedelta(summed["bucket"].to_numpy() * WIDTH, unit="s"),
        "article_count": summed["article_count"], "mean_p_negative": p_negative,
        "mean_p_neutral": 1 - p_negative - p_positive, "mean_p_positive": p_positive,
        "negative_share": summed["negative_articles"] / summed["article_count"], "mean_sentiment": sentiment,
        "emotion_index": sentiment,  # detection never reads the decayed index; the bucket's own mean stands in
        "decay_sum": sentiment * summed["article_count"], "decay_weight": summed["article_count"].astype(float),
        "story_count": summed["story_count"].astype(float), "adverse_count": summed["adverse_count"].astype(float),
        "risk_count": summed["risk_count"].astype(float),
    })


def synthetic_history(entities: int, days: int, burst_ends: Callable[[np.random.Generator, int], np.ndarray],
                      seed: int = 12) -> pd.DataFrame:
    """Stored buckets of `entities` companies and the market entity over the `days` before END."""
    rng = np.random.default_rng(seed)
    buckets = days * BUCKETS_PER_DAY
    stories = pd.concat([_stories(rng, entities, days), _bursts(rng, entities, burst_ends(rng, buckets))],
                        ignore_index=True)
    stories = stories[(stories["bucket"] >= 0) & (stories["bucket"] < buckets)]
    names = np.array([f"E{index:05d}" for index in range(entities)] + [MARKET], dtype=object)
    market = stories.assign(entity=entities)  # every article is also about the market
    return _buckets(pd.concat([stories, market], ignore_index=True), names, END - timedelta(days=days))


def live_bursts(entities: int) -> Callable[[np.random.Generator, int], np.ndarray]:
    """One entity in a thousand has a story breaking in the newest bucket: what a live pass fires on."""
    return lambda _rng, buckets: np.full(max(1, entities // 1000), buckets - 1)


def backtest_bursts(tickers: int, days: int) -> Callable[[np.random.Generator, int], np.ndarray]:
    """About one breaking story per ticker every four months, at random moments."""
    count = max(1, round(tickers * days / 120))
    return lambda rng, buckets: np.sort(rng.integers(36, buckets, count))


# ---- the database ------------------------------------------------------------------------------


@contextmanager
def database(url: str | None) -> Iterator[Engine]:
    """An engine on `url`, else on an embedded PostgreSQL in a scratch dir (stopped on exit, on SIGTERM too)."""
    with tempfile.TemporaryDirectory(prefix="finsent-bench-alerts-") as scratch:
        server = None if url else EmbeddedPostgres(Path(scratch) / "postgres", delete_on_exit=True)
        engine = make_engine(url or server.start())  # type: ignore[union-attr]
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()
            if server is not None:
                server.stop()


def load(engine: Engine, frame: pd.DataFrame, label: str, chunk_rows: int = 200_000) -> float:
    """Empty the finsent tables, COPY `frame` into buckets (with progress), VACUUM ANALYZE; seconds taken.

    VACUUM sets the visibility map and hint bits as autovacuum would on a live table, so the timed
    reads are not paying the one-off cost of the first read after a bulk load."""
    empty_all_tables(engine)
    started = time.perf_counter()
    bar = progress(len(frame), f"loading {label}", "rows")
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            for begin in range(0, len(frame), chunk_rows):
                part = frame.iloc[begin:begin + chunk_rows]
                with cursor.copy(f"COPY buckets ({', '.join(COPY_COLUMNS)}) FROM STDIN WITH (FORMAT csv)") as copy:
                    copy.write(_csv(part))
                bar.update(len(part))
        raw.commit()
    finally:
        bar.close()
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM (ANALYZE) buckets")
    return time.perf_counter() - started


def _csv(part: pd.DataFrame) -> str:
    table = part.assign(width_seconds=WIDTH, model_version=MODEL_VERSION,
                        bucket_start=part["bucket_start"].dt.strftime("%Y-%m-%d %H:%M:%S+00"))
    buffer = io.StringIO()
    table[COPY_COLUMNS].to_csv(buffer, index=False, header=False)
    return buffer.getvalue()


def add_watermark(engine: Engine) -> datetime:
    """The newest article: its event time closes the newest bucket (END + lateness). Returns it."""
    watermark = END + LATENESS
    with engine.begin() as connection:
        connection.execute(sa.insert(Article).values(id="bench-watermark", published_at=watermark, headline="bench",
                                                     body="", ingested_at=watermark))
    return watermark


def reset_pass(engine: Engine, evaluated_through: datetime) -> None:
    """Forget every alert and set progress so the next pass judges only the bucket after `evaluated_through`."""
    with engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE alerts, alert_events, deliveries RESTART IDENTITY CASCADE")
        connection.exec_driver_sql(
            "INSERT INTO detection_progress (width_seconds, evaluated_through) VALUES (%(width)s, %(through)s) "
            "ON CONFLICT (width_seconds) DO UPDATE SET evaluated_through = excluded.evaluated_through",
            {"width": WIDTH, "through": evaluated_through},
        )


# ---- the live pass -----------------------------------------------------------------------------


@dataclass
class LiveFigures:
    entities: int
    stored_rows: int
    load_s: float
    seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    fired: int = 0
    candidates: int = 0


def median_time(repeats: int, function: Callable[[], T]) -> tuple[T, float]:
    """The last result and the median wall time of `repeats` calls."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return result, statistics.median(times)  # type: ignore[return-value]


HOURLY_SQL = (
    "SELECT entity, date_trunc('hour', bucket_start) AS hour, sum(adverse_count), sum(risk_count), sum(story_count), "
    "sum(article_count), sum(mean_p_negative * article_count) FROM buckets "
    "WHERE width_seconds = %(width)s AND bucket_start >= %(start)s AND bucket_start < %(end)s GROUP BY entity, hour"
)
RANGE_COUNT_SQL = ("SELECT count(*) FROM buckets "
                   "WHERE width_seconds = %(width)s AND bucket_start >= %(start)s AND bucket_start < %(end)s")


def time_sql(engine: Engine, figures: LiveFigures, repeats: int, newest: datetime) -> None:
    """Baselines for the reads: the scans, and the per-hour aggregation of the history counted on the server and fetched by the driver."""
    window = {"width": WIDTH, "start": newest - timedelta(seconds=RULES.lookback_seconds), "end": newest + STEP}
    history = {"width": WIDTH, "start": newest - timedelta(seconds=RULES.history_seconds), "end": newest + STEP}
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            def scalar(sql: str, parameters: dict[str, Any]) -> int:
                cursor.execute(sql, parameters)
                return int(cursor.fetchone()[0])  # type: ignore[index]

            def fetch_all() -> int:
                cursor.execute(HOURLY_SQL, history)
                return len(cursor.fetchall())

            figures.rows["sql window scan"], figures.seconds["sql window scan"] = median_time(
                repeats, lambda: scalar(RANGE_COUNT_SQL, window))
            figures.rows["sql history scan"], figures.seconds["sql history scan"] = median_time(
                repeats, lambda: scalar(RANGE_COUNT_SQL, history))
            figures.rows["sql hourly group by"], figures.seconds["sql hourly group by"] = median_time(
                repeats, lambda: scalar(f"SELECT count(*) FROM ({HOURLY_SQL}) AS grouped", history))
            figures.rows["driver hourly fetch"], figures.seconds["driver hourly fetch"] = median_time(repeats, fetch_all)
        raw.rollback()
    finally:
        raw.close()


def time_parts(engine: Engine, figures: LiveFigures, repeats: int, newest: datetime) -> None:
    """The pass's parts, called directly with the arguments judge_span gives them for the one bucket `newest`."""
    with engine.connect() as connection:
        buckets, figures.seconds["buckets_window"] = median_time(repeats, lambda: buckets_window(
            connection, WIDTH, newest - timedelta(seconds=RULES.lookback_seconds), newest + STEP))
        hourly, figures.seconds["history_bands"] = median_time(repeats, lambda: history_bands(
            connection, WIDTH, history_edges(newest, newest, WIDTH, RULES)))
        data_start, figures.seconds["first_bucket"] = median_time(repeats, lambda: first_bucket(connection, WIDTH))
    figures.rows["buckets_window"], figures.rows["history_bands"] = len(buckets), len(hourly)
    figures.seconds["reads"] = sum(figures.seconds[name] for name in ("buckets_window", "history_bands", "first_bucket"))
    candidates, figures.seconds["detect"] = median_time(repeats, lambda: detect(
        buckets, hourly, data_start, WIDTH, newest, newest, RULES, MARKET))
    figures.rows["detect"] = len(candidates)
    (_firing, transitions), figures.seconds["lifecycle"] = median_time(repeats, lambda: advance(
        {}, candidates_from(candidates), WIDTH, newest, newest, POLICY))
    figures.rows["lifecycle"] = len(transitions)


def time_pass(engine: Engine, figures: LiveFigures, repeats: int, newest: datetime, watermark: datetime) -> None:
    """`DetectionPass.run()` end to end, judging only `newest`, alerts and progress reset before each run."""
    detection = DetectionPass(engine, RULES, POLICY, DetectionSchedule((WIDTH,), LATENESS, timedelta(minutes=10), MARKET),
                              route=lambda _entity, _severity: [], clock=lambda: watermark)
    times = []
    for _ in range(repeats):
        reset_pass(engine, newest - STEP)
        started = time.perf_counter()
        report = detection.run()
        times.append(time.perf_counter() - started)
        assert report.judged == {WIDTH: (newest, newest)}, f"the pass judged {report.judged}, not the newest bucket"
    figures.seconds["pass"] = statistics.median(times)
    figures.fired = report.stored.transitions.get("fired", 0)
    figures.candidates = report.candidates


def live(engine: Engine, entities: int, days: int, repeats: int) -> LiveFigures:
    frame = synthetic_history(entities, days, live_bursts(entities))
    figures = LiveFigures(entities, len(frame), load(engine, frame, f"{entities:,} entities x {days} days"))
    del frame
    watermark = add_watermark(engine)
    newest = END - STEP
    time_sql(engine, figures, repeats, newest)
    time_parts(engine, figures, repeats, newest)
    time_pass(engine, figures, repeats, newest, watermark)
    return figures


LIVE_ROWS = [
    ("buckets_window", "  read: buckets_window (3 days of buckets)"),
    ("history_bands", "  read: history_bands (31 days, summed between window edges)"),
    ("first_bucket", "  read: first_bucket"),
    ("reads", "  read: all three"),
    ("sql window scan", "    floor: count(*) over the window"),
    ("sql history scan", "    floor: count(*) over the history"),
    ("sql hourly group by", "    baseline: per-hour GROUP BY, on the server"),
    ("driver hourly fetch", "    baseline: per-hour rows fetched by psycopg"),
    ("detect", "  rules.detect (candidate rows)"),
    ("lifecycle", "  lifecycle.advance (transitions)"),
    ("pass", "DetectionPass.run() end to end"),
]


def print_live(results: list[LiveFigures], days: int) -> None:
    print(f"\nlive pass judging the newest 5-minute bucket, {days} days stored, trailing "
          f"{RULES.trailing_seconds // 86400}d + longest horizon {RULES.longest_horizon // 86400}d "
          f"(median of the repeats; target <= 2 s at 10,000 entities)")
    header = "".join(f"{f'{figures.entities:,} entities':>30}" for figures in results)
    print(f"{'':48}{header}")
    print(f"{'stored buckets (rows in buckets)':48}" + "".join(f"{f.stored_rows:>30,}" for f in results))
    print(f"{'loaded with COPY + VACUUM ANALYZE in':48}" + "".join(f"{f'{f.load_s:.1f} s':>30}" for f in results))
    for key, label in LIVE_ROWS:
        cells = []
        for figures in results:
            rows = f"{figures.rows[key]:,} rows  " if key in figures.rows else ""
            cells.append(f"{rows}{figures.seconds[key] * 1000:9.1f} ms")
        print(f"{label:48}" + "".join(f"{cell:>30}" for cell in cells))
    print(f"{'  pass minus its parts (store, commit, noise)':48}" + "".join(
        f"{(f.seconds['pass'] - f.seconds['reads'] - f.seconds['detect'] - f.seconds['lifecycle']) * 1000:27.1f} ms"
        for f in results))
    print(f"{'alerts fired by the pass / triggered candidates':48}" + "".join(
        f"{f'{f.fired} / {f.candidates}':>30}" for f in results))
    if len(results) > 1:
        base, big = results[0], results[-1]
        ratio = f"{big.seconds['pass'] / base.seconds['pass']:.1f}x for {big.entities / base.entities:.0f}x entities"
        print(f"{'scaling of the pass time':48}{'':30}{ratio:>30}")


# ---- the backtest ------------------------------------------------------------------------------


@contextmanager
def timed_inside_judging(totals: dict[str, float]) -> Iterator[None]:
    """Wrap the functions `judge_span` calls so their time adds up in `totals` (restored on exit)."""
    names = {"buckets_window": "read", "history_bands": "read", "first_bucket": "read", "detect": "detect",
             "advance": "lifecycle"}
    originals = {name: getattr(judging, name) for name in names}

    def wrap(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                totals[names[name]] = totals.get(names[name], 0.0) + time.perf_counter() - started
        return timed

    for name, function in originals.items():
        setattr(judging, name, wrap(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(judging, name, function)


def backtest(engine: Engine, months: int, tickers: int) -> None:
    days = round(months * 365.25 / 12)
    frame = synthetic_history(tickers, days, backtest_bursts(tickers, days), seed=16)
    load_s = load(engine, frame, f"{tickers} tickers x {months} months")
    start = END - timedelta(days=days)
    total = days * BUCKETS_PER_DAY
    with engine.connect() as connection:
        scan_started = time.perf_counter()
        scanned = connection.exec_driver_sql(RANGE_COUNT_SQL, {"width": WIDTH, "start": start, "end": END}).scalar()
        scan_s = time.perf_counter() - scan_started
    bar = progress(total, "backtest", "buckets")
    done = [0]

    def advanced(judged: int, _total: int) -> None:
        bar.update(judged - done[0])
        done[0] = judged

    totals: dict[str, float] = {}
    started = time.perf_counter()
    try:
        with timed_inside_judging(totals):
            result = run_backtest(engine, RULES, POLICY, WIDTH, start, END, MARKET, progress=advanced)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    print(f"\nbacktest, {months} months ({days} days) x {tickers} tickers + the market: {len(frame):,} stored buckets "
          f"(loaded in {load_s:.1f} s), {result.buckets:,} buckets judged ({total / judging.SLICE_BUCKETS:.0f} slices)")
    print(f"  run_backtest                   {seconds:9.1f} s    {result.buckets / seconds:9,.0f} buckets/s   "
          f"{result.buckets * (tickers + 1) / seconds:11,.0f} entity-buckets/s   {len(result.alerts)} alert episodes")
    for part in ("read", "detect", "lifecycle"):
        share = totals.get(part, 0.0)
        print(f"    {part:<30} {share:9.1f} s    {share / seconds:6.1%}")
    rest = seconds - sum(totals.values())
    print(f"    {'the rest (evidence, episodes)':<30} {rest:9.1f} s    {rest / seconds:6.1%}")
    print(f"  baseline: count(*) over the span's {scanned:,} rows   {scan_s * 1000:9.1f} ms")


# ---- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=10_000, help="entities of the live pass (the baseline: a tenth)")
    parser.add_argument("--days", type=int, default=31, help="days of history stored for the live pass")
    parser.add_argument("--backtest-months", type=int, default=16, help="months of the backtest (0: skip it)")
    parser.add_argument("--backtest-tickers", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3, help="runs per live figure (the median is printed)")
    parser.add_argument("--database-url", default=os.environ.get("FINSENT_BENCH_DATABASE_URL", ""),
                        help="a scratch PostgreSQL (its finsent tables are truncated); default: an embedded one")
    arguments = parser.parse_args()
    sizes = sorted({max(1, arguments.entities // 10), arguments.entities})
    with database(arguments.database_url or None) as engine:
        results = [live(engine, entities, arguments.days, arguments.repeats) for entities in sizes]
        print_live(results, arguments.days)
        if arguments.backtest_months > 0:
            backtest(engine, arguments.backtest_months, arguments.backtest_tickers)
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    from pipeline.interruption import run_interruptible

    sys.exit(run_interruptible(main, "bench/alerts.py"))  # SIGTERM as Ctrl-C: the embedded PostgreSQL is stopped
