"""Alert quality on real news: a tagged headline CSV through the whole pipeline, then a backtest
scored against known events.

What it does
    1. Reads a tagged headline CSV (`published_at,ticker,headline,source`, one row per (headline,
       ticker); bench/tagged_news.py says how date-only rows get a time and how ids are made).
    2. Replays every row as one message through the real pipeline: the embedded broker (Tansu),
       the finsent worker with the configured (default: shipped) model in a thread, an embedded
       PostgreSQL in a scratch data dir; it waits, with progress, until every message is stored.
    3. Backtests the whole span with the default settings, as a live scheduler would have judged
       it (`run_backtest`, the code `finsent backtest` runs).
    4. Scores the alerts against the events (pipeline/alerting/evaluation.py, the rules of
       `finsent backtest --events`): per event detected or not, delay and alert; recall; median
       delay; unlisted alerts per ticker-month; the market entity's alerts apart. Then lists the
       unlisted alerts with their top headlines, to be read: many are real negative stories that
       are not on the list, the rest is noise.
    5. The recall/noise curve: the same backtest with the main threshold,
       `DetectionRules.false_alarms_per_year`, at each --thresholds value.

How to run
    .venv/bin/python bench/alerts_real.py --news FILE.csv --events events.csv \\
        [--evaluate-from 2018-04-20] [--thresholds 0.1,0.3,1,3,10] [--keep DIR]

    --evaluate-from: count events, unlisted alerts and ticker-months from this day on (default:
    the first article). --keep DIR keeps the scored database under DIR (embedded PostgreSQL in
    DIR/postgres): a second run on the same file finds every article stored and goes straight to
    the backtests. Delete DIR after changing the worker or the model: its scores and buckets are
    the old ones. Without --keep everything lives in a temporary directory removed at the end.
    Only FINSENT_MODEL_* and FINSENT_TORCH_THREADS are read from the environment (which model,
    on which device); every other setting is its default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from progress_display import Progress, progress
from sqlalchemy import Engine
from tagged_news import TaggedMessage, TaggedNews, TaggedNewsError, read_tagged_news

from consumers.embedded_broker import EmbeddedBroker
from consumers.kafka_clients import create_producer, ensure_topics
from pipeline.alerting.backtest import BacktestResult, run_backtest
from pipeline.alerting.evaluation import AlertEvaluation, evaluate_alerts
from pipeline.alerting.evaluation_report import evaluation_text, unlisted_text
from pipeline.alerting.events_file import read_events
from pipeline.alerting.rules import DetectionRules
from pipeline.alerting.scheduler import detection_rules, lifecycle_policy
from pipeline.config import Settings
from pipeline.errors import UserError
from pipeline.interruption import interrupts_ignored
from pipeline.kafka_settings import kafka_options
from pipeline.logfmt import configure_logging
from pipeline.moments import parse_moment
from pipeline.scoring.mpnet_base import share_installed_base
from pipeline.series import bucket_start
from pipeline.tabular import clock_text, width_label
from pipeline.worker import Worker
from storage.embedded import EmbeddedPostgres
from storage.engine import make_engine
from storage.migrate import upgrade
from storage.queries import entity_days

NAME = "bench/alerts_real.py"
THRESHOLD_FIELD = "false_alarms_per_year"
DEFAULT_THRESHOLDS = (0.1, 0.3, 1.0, 3.0, 10.0)
STALL_TIMEOUT_S = 300.0
"""Give up when no article was stored for this long (a hang guard: the first batch waits for the group join)."""
POLL_S = 0.5
WORKER_STOP_TIMEOUT_S = 60.0
MODEL_VARIABLES = ("FINSENT_MODEL", "FINSENT_MODEL_PATH", "FINSENT_MODEL_DEVICE", "FINSENT_MODEL_LABELS",
                   "FINSENT_MODEL_QUANTIZE", "FINSENT_MODEL_PRECISION", "FINSENT_TORCH_THREADS")
# Real Kafka's minimum session timeout; a group join on Tansu takes about half of it.
SESSION_TIMEOUT_MS = "6000"
HEARTBEAT_INTERVAL_MS = "1000"


class BenchError(Exception):
    """The benchmark could not finish; the message says what was seen and what to check."""


@dataclass(frozen=True)
class Options:
    news: Path
    events: Path
    evaluate_from: datetime | None
    thresholds: tuple[float, ...]
    keep: Path | None


@dataclass(frozen=True)
class Scratch:
    data_dir: Path
    database_url: str
    engine: Engine


@dataclass(frozen=True)
class Replay:
    sent: int
    seconds: float


@dataclass(frozen=True)
class Run:
    """One backtest and its evaluation."""

    rules: DetectionRules
    result: BacktestResult
    evaluation: AlertEvaluation
    seconds: float


# ---------------------------------------------------------------- infrastructure


@contextmanager
def scratch_database(keep: Path | None) -> Iterator[Scratch]:
    """An embedded PostgreSQL under `keep` (kept) or a temporary directory (removed), migrated."""
    with ExitStack() as stack:
        if keep is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="finsent-alerts-real-")))
        else:
            keep.mkdir(parents=True, exist_ok=True)
            data_dir = keep
        # FINSENT_MODEL=accurate works here too: the scratch data dir sees the user's installed base.
        share_installed_base(data_dir, Settings.load({k: v for k, v in os.environ.items() if k == "FINSENT_DATA_DIR"}).data_dir)
        server = EmbeddedPostgres(data_dir, delete_on_exit=keep is None)
        stack.callback(server.stop)
        url = server.start()
        engine = make_engine(url, pool_size=2, application_name="finsent-bench")
        stack.callback(engine.dispose)
        upgrade(engine)
        yield Scratch(data_dir, url, engine)


def pipeline_settings(scratch: Scratch, bootstrap: str | None = None) -> Settings:
    """The defaults, on this run's broker and database; the model settings from the environment."""
    environment = {name: os.environ[name] for name in MODEL_VARIABLES if name in os.environ}
    environment |= {
        "FINSENT_DATABASE_URL": scratch.database_url,
        "FINSENT_DATA_DIR": str(scratch.data_dir),
        "FINSENT_TOPIC_PARTITIONS": "1",  # one worker reads the stream in event-time order
        "FINSENT_KAFKA_SESSION_TIMEOUT_MS": SESSION_TIMEOUT_MS,
        "FINSENT_KAFKA_HEARTBEAT_INTERVAL_MS": HEARTBEAT_INTERVAL_MS,
    }
    if bootstrap is not None:
        environment["FINSENT_KAFKA_BOOTSTRAP"] = bootstrap
    return Settings.load(environment)


# ---------------------------------------------------------------- replay


def stored_ids(engine: Engine, ids: list[str]) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(sa.text("SELECT id FROM articles WHERE id = ANY(:ids)"), {"ids": ids}))


def count_articles(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM articles")).scalar_one())


def replay_missing(scratch: Scratch, news: TaggedNews, stack: ExitStack) -> Replay | None:
    """Replay the messages not stored yet and wait for the worker to store them; None when none is missing."""
    ids = [message.id for message in news.messages]
    already = stored_ids(scratch.engine, ids)
    foreign = count_articles(scratch.engine) - len(already)
    if foreign:
        raise BenchError(f"{scratch.data_dir} holds {foreign} articles that are not in this news file: "
                         "give another --keep directory, or delete it")
    missing = [message for message in news.messages if message.id not in already]
    if not missing:
        return None
    started = time.monotonic()
    broker = EmbeddedBroker(log_path=scratch.data_dir / "tansu.log")
    stack.callback(broker.stop)
    broker.start()
    settings = pipeline_settings(scratch, broker.bootstrap)
    ensure_topics(kafka_options(settings, "finsent-bench-admin"), [settings.topic_news, settings.topic_dead_letter], 1)
    errors: list[BaseException] = []
    thread = start_worker(settings, stack, errors)
    produce(settings, missing)
    wait_until_stored(scratch.engine, ids, len(already), thread, errors)
    return Replay(len(missing), time.monotonic() - started)


def start_worker(settings: Settings, stack: ExitStack, errors: list[BaseException]) -> threading.Thread:
    """The finsent worker in a thread; `stack` stops it (finishing its batch) when it closes."""
    worker = Worker(settings)
    try:
        worker.start()
    except BaseException:
        worker.close()  # once its thread runs, the thread closes it
        raise

    def run() -> None:
        try:
            worker.run()
        except BaseException as error:  # noqa: BLE001 - reported by the waiting main thread
            errors.append(error)

    thread = threading.Thread(target=run, name="finsent-worker", daemon=True)

    def stop() -> None:
        worker.stop.set()
        thread.join(timeout=WORKER_STOP_TIMEOUT_S)

    stack.callback(stop)
    thread.start()
    return thread


def produce(settings: Settings, messages: list[TaggedMessage]) -> None:
    """Every message onto the news topic, oldest first, keyed by id; waits for the broker's acks."""
    producer = create_producer(kafka_options(settings, "finsent-bench-producer"), linger_ms=20)
    bar = progress(len(messages), "producing", "msg")
    try:
        futures = []
        for message in messages:
            futures.append(producer.send(settings.topic_news, key=message.id.encode("utf-8"), value=message.value))
            bar.update(1)
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    finally:
        bar.close()
        producer.close(timeout=10)


def wait_until_stored(engine: Engine, ids: list[str], already: int, thread: threading.Thread,
                      errors: list[BaseException]) -> None:
    bar = progress(len(ids), "worker scoring and storing", "article")
    bar.update(already)
    stored, last_change = already, time.monotonic()
    try:
        while stored < len(ids):
            if errors or not thread.is_alive():
                raise BenchError(f"the worker stopped early: {errors[0]!r}" if errors else "the worker stopped early")
            time.sleep(POLL_S)
            now_stored = len(stored_ids(engine, ids))
            if now_stored > stored:
                bar.update(now_stored - stored)
                stored, last_change = now_stored, time.monotonic()
            elif time.monotonic() - last_change > STALL_TIMEOUT_S:
                raise BenchError(f"no article stored for {STALL_TIMEOUT_S:.0f}s at {stored} of {len(ids)}: "
                                 "check the worker's warnings above and the dead-letter topic")
    finally:
        bar.close()


# ---------------------------------------------------------------- backtests


def data_span(engine: Engine) -> tuple[datetime, datetime]:
    with engine.connect() as connection:
        first, last = connection.execute(sa.text("SELECT min(published_at), max(published_at) FROM articles")).one()
    if first is None:
        raise BenchError("no article was stored: nothing to backtest")
    return first, last


def backtest(scratch: Scratch, settings: Settings, rules: DetectionRules, events: pd.DataFrame, coverage: pd.DataFrame,
             evaluate_from: datetime, label: str) -> Run:
    """The whole span judged as live, then scored against the events."""
    width = settings.judged_widths[0]
    first, last = data_span(scratch.engine)
    start = bucket_start(first, width)
    end = bucket_start(last, width) + timedelta(seconds=width)
    started = time.monotonic()
    with bucket_progress(label) as report:
        result = run_backtest(scratch.engine, rules, lifecycle_policy(settings), width, start, end, settings.market_entity,
                              progress=report)
    evaluation = evaluate_alerts(result.alerts, events, coverage, settings.market_entity, evaluate_from, end)
    return Run(rules, result, evaluation, time.monotonic() - started)


@contextmanager
def bucket_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A (done, total) callback drawing a bar, made at the first call, when the total is known."""
    bar: Progress | None = None
    shown = 0

    def report(done: int, total: int) -> None:
        nonlocal bar, shown
        if bar is None:
            bar = progress(total, label, "bucket", interval_s=10.0)
        bar.update(done - shown)
        shown = done

    try:
        yield report
    finally:
        if bar is not None:
            bar.close()


def threshold_of(rules: DetectionRules) -> float | None:
    names = {field.name for field in dataclasses.fields(rules)}
    return float(getattr(rules, THRESHOLD_FIELD)) if THRESHOLD_FIELD in names else None


def curve(scratch: Scratch, settings: Settings, main: Run, events: pd.DataFrame, coverage: pd.DataFrame,
          evaluate_from: datetime, thresholds: tuple[float, ...]) -> list[Run]:
    """The backtest at each threshold value (the default's run reused)."""
    runs = []
    for value in thresholds:
        if value == threshold_of(main.rules):
            runs.append(main)
            continue
        rules = dataclasses.replace(main.rules, **{THRESHOLD_FIELD: value})
        runs.append(backtest(scratch, settings, rules, events, coverage, evaluate_from, f"backtest {THRESHOLD_FIELD}={value:g}"))
    return runs


# ---------------------------------------------------------------- report


def model_versions(engine: Engine) -> str:
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT model_version, count(*) FROM article_scores GROUP BY model_version ORDER BY count(*) DESC")).all()
    return ", ".join(f"{version} ({count} articles)" for version, count in rows) or "none"


def header(options: Options, news: TaggedNews, scratch: Scratch, replay: Replay | None, run: Run, settings: Settings) -> str:
    first, last = data_span(scratch.engine)
    skipped = f", {news.skipped} rows skipped ({'; '.join(news.skipped_examples)})" if news.skipped else ""
    tickers = len({message.ticker for message in news.messages})
    if replay is None:
        replayed = f"replay: every article already stored in {scratch.data_dir} (--keep): skipped"
    else:
        replayed = (f"replay: {replay.sent} messages through broker -> worker -> PostgreSQL in {replay.seconds:.0f}s "
                    f"({replay.sent / replay.seconds:.1f} msg/s)")
    threshold = threshold_of(run.rules)
    return "\n".join([
        f"finsent alert quality on real news: {options.news.name}: {news.rows} rows, {len(news.messages)} articles "
        f"({news.duplicates} duplicate rows{skipped}), {tickers} tickers, {clock_text(first)} .. {clock_text(last)}",
        replayed,
        f"scored by: {model_versions(scratch.engine)}",
        f"backtest: default settings, {width_label(settings.judged_widths[0])} buckets"
        + ("" if threshold is None else f", {THRESHOLD_FIELD}={threshold:g}")
        + f": {len(run.result.alerts)} alerts over {run.result.buckets} buckets x {run.result.entities} entities "
        f"in {run.seconds:.0f}s",
        f"events: {options.events.name}; evaluated from {clock_text(run.evaluation.evaluate_from)}",
    ])


def curve_text(runs: list[Run], default: float) -> str:
    lines = [f"recall/noise curve of DetectionRules.{THRESHOLD_FIELD} (default {default:g}):",
             f"  {'value':>7}  {'alerts':>6}  {'recall':>11}  {'median delay h':>14}  {'unlisted':>8}  "
             f"{'per ticker-month':>16}  {'market':>6}  {'seconds':>7}"]
    for run in runs:
        evaluation = run.evaluation
        recall = evaluation.recall
        delay = evaluation.median_delay_hours
        rate = evaluation.unlisted_per_ticker_month
        found = f"{evaluation.detected_events}/{evaluation.counted_events}" + ("" if recall is None else f" {100 * recall:.0f}%")
        lines.append(
            f"  {threshold_of(run.rules):>7g}  {evaluation.company_alerts:>6}  {found:>11}  "
            f"{'-' if delay is None else f'{delay:.1f}':>14}  {len(evaluation.unlisted):>8}  "
            f"{'-' if rate is None else f'{rate:.3f}':>16}  {evaluation.market_alerts:>6}  {run.seconds:>7.0f}")
    lines.append("  alerts = company alerts from the evaluated start on; market = the market entity's alerts")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def run(options: Options, stack: ExitStack) -> None:
    news = read_tagged_news(options.news)
    events = read_events(options.events)
    if not news.messages:
        raise BenchError(f"{options.news}: no row could be replayed ({'; '.join(news.skipped_examples) or 'the file is empty'})")
    scratch = stack.enter_context(scratch_database(options.keep))
    replay_parts = ExitStack()  # the broker and the worker, stopped once every article is stored
    try:
        replay = replay_missing(scratch, news, replay_parts)
    finally:
        with interrupts_ignored():
            replay_parts.close()
    settings = pipeline_settings(scratch)
    rules = detection_rules(settings)
    first, last = data_span(scratch.engine)
    evaluate_from = options.evaluate_from or first
    with scratch.engine.connect() as connection:
        coverage = entity_days(connection, min(first, evaluate_from - timedelta(days=1)), last + timedelta(seconds=1))
    main_run = backtest(scratch, settings, rules, events, coverage, evaluate_from, "backtest (default settings)")
    print(header(options, news, scratch, replay, main_run, settings))
    print()
    print(evaluation_text(main_run.evaluation, settings.market_entity))
    print(unlisted_text(main_run.evaluation))
    default = threshold_of(rules)
    if default is None:
        print(f"note: DetectionRules has no field {THRESHOLD_FIELD} yet: no recall/noise curve")
        return
    runs = curve(scratch, settings, main_run, events, coverage, evaluate_from, options.thresholds)
    print(curve_text(runs, default))


def thresholds(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers separated by commas, e.g. 0.1,0.3,1,3,10") from None
    if not values or any(value <= 0 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give positive numbers separated by commas, e.g. 0.1,0.3,1,3,10")
    return values


def moment(text: str) -> datetime:
    try:
        return parse_moment(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--news", type=Path, required=True, help="tagged headline CSV: published_at,ticker,headline,source")
    parser.add_argument("--events", type=Path, required=True, help="known events CSV: ticker,event_date")
    parser.add_argument("--evaluate-from", type=moment, metavar="DATE",
                        help="count events, unlisted alerts and ticker-months from here on (default: the first article)")
    parser.add_argument("--thresholds", type=thresholds, default=DEFAULT_THRESHOLDS, metavar="LIST",
                        help=f"values of DetectionRules.{THRESHOLD_FIELD} for the recall/noise curve "
                             "(default 0.1,0.3,1,3,10)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the scored database here and reuse it (a second run skips the replay)")
    arguments = parser.parse_args(argv)
    return Options(arguments.news, arguments.events, arguments.evaluate_from, arguments.thresholds, arguments.keep)


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    configure_logging("WARNING")
    stack = ExitStack()
    try:
        run(options, stack)
    except (BenchError, TaggedNewsError, UserError) as error:
        print(f"{NAME}: error: {error}", file=sys.stderr)
        return 2
    finally:
        with interrupts_ignored():
            stack.close()
    return 0


if __name__ == "__main__":
    from pipeline.interruption import run_interruptible

    sys.exit(run_interruptible(main, NAME))  # SIGTERM as Ctrl-C: the embedded servers it started are stopped
