"""`finsent demo`: the whole system on embedded defaults, in one command.

Starts the embedded broker and the embedded PostgreSQL (kept under the data dir afterwards, so
`finsent` query commands work on it), runs a worker and the alert scheduler, replays the shipped
sample stream with time compression, prints what landed in the database and the alerts raised, and
draws the picture (`finsent plot`). Ctrl-C (or SIGTERM) stops every thread and process it started,
each stop registered before its start, and keeps every committed transaction.

The replay compresses event time (240x: two minutes of news per half second), so the scheduler
runs every few seconds with a generous allowed lateness; once the worker has stored everything,
one last pass judges the remaining buckets (the stream is over, nothing else will arrive).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine
from tqdm import tqdm

from consumers.embedded_broker import EmbeddedBroker
from consumers.kafka_clients import create_producer, ensure_topics
from consumers.replay import ReplayLine, ReplaySummary, count_records, read_news_file, replay
from pipeline.alerting.scheduler import AlertScheduler, build_parts
from pipeline.config import Settings
from pipeline.database import open_database
from pipeline.interruption import EXIT_INTERRUPTED, interrupts_ignored, terminate_as_interrupt
from pipeline.kafka_settings import kafka_options
from pipeline.metrics import Metrics
from pipeline.picture import PlotRequest, check_writable, write_plot
from pipeline.worker import Worker
from storage.migrate import ensure_schema
from storage.queries import EPOCH, alerts_frame, entity_summary, stored_article_count
from storage.reset import empty_all_tables

log = logging.getLogger(__name__)

SAMPLE_RESOURCE = "data/demo_news.jsonl"
DEFAULT_SPEEDUP = 240.0
DEMO_ALERT_INTERVAL_S = 5
DEMO_LATENESS_S = 1800
"""Thirty minutes of event time: about eight seconds of wall time at 240x, longer than a worker batch."""
DEMO_PICTURE = "finsent-demo.png"
WORKER_STOP_TIMEOUT_S = 30.0
"""Long enough for the batch being scored to finish and commit (or be dropped) under a busy CPU."""
SCHEDULER_STOP_TIMEOUT_S = 60.0
_SUMMARY_ENTITIES = 15


@dataclass(frozen=True)
class DemoOptions:
    speedup: float = DEFAULT_SPEEDUP
    reset: bool = False
    news_file: Path | None = None
    plot: Path | None = None
    no_plot: bool = False
    """--no-plot: skip the picture (and the check that its path is writable)."""


def sample_news_file() -> Path:
    return Path(str(resources.files("pipeline").joinpath(SAMPLE_RESOURCE)))


def run_demo(settings: Settings, options: DemoOptions) -> int:
    """The whole demo; Ctrl-C stops everything it started (exit 130) and keeps what was stored."""
    news_file = options.news_file or sample_news_file()
    total = count_records(news_file)
    picture = None if options.no_plot else options.plot or settings.data_dir / DEMO_PICTURE
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if picture is not None:
        check_writable(picture, "--plot")
    started = ExitStack()
    try:
        with terminate_as_interrupt():
            return _run(settings, options, news_file, total, picture, started)
    except KeyboardInterrupt:
        with interrupts_ignored():
            started.close()
        print(f"finsent demo: interrupted; stopped the worker, the scheduler, the broker and the database; "
              f"what was stored stays in the database ({_where(settings)})", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        with interrupts_ignored():
            started.close()


def _run(settings: Settings, options: DemoOptions, news_file: Path, total: int, picture: Path | None,
         started: ExitStack) -> int:
    """Start the parts, registering each one's stop on `started` before it starts (closed in reverse)."""
    metrics = Metrics(settings.metrics_port, settings.metrics_host)  # worker and scheduler share one endpoint when the port is set
    metrics.serve()
    broker = EmbeddedBroker()
    started.callback(broker.stop)
    broker.start()
    settings = settings.replace(kafka_bootstrap=broker.bootstrap)
    database = open_database(settings)
    started.callback(database.close)
    ensure_schema(database.engine)
    if options.reset:
        _reset(database.engine)
    print(f"finsent demo: broker {broker.bootstrap} (embedded), database {_where(settings)}", file=sys.stderr)
    ensure_topics(kafka_options(settings), [settings.topic_news, settings.topic_dead_letter, settings.topic_alerts],
                  settings.topic_partitions)
    worker = Worker(settings, metrics=metrics)
    try:
        worker.start()
    except BaseException:
        worker.close()  # once its thread runs, the thread closes it
        raise
    _start_thread(started, worker.run, worker.stop, "finsent-worker", WORKER_STOP_TIMEOUT_S)
    alert_settings = settings.replace(alert_interval=DEMO_ALERT_INTERVAL_S, alert_lateness=DEMO_LATENESS_S)
    scheduler = AlertScheduler(build_parts(alert_settings, database.engine), alert_settings.alert_interval, metrics)
    stop_alerts = threading.Event()
    scheduler_thread = _start_thread(started, lambda: scheduler.run(stop_alerts), stop_alerts, "finsent-scheduler",
                                     SCHEDULER_STOP_TIMEOUT_S)
    summary = _replay(settings, news_file, total, options.speedup)
    _wait_for_worker(database.engine, _valid_ids(news_file, settings))
    stop_alerts.set()
    scheduler_thread.join(timeout=SCHEDULER_STOP_TIMEOUT_S)
    _final_alert_pass(alert_settings, database.engine)
    _print_summary(database.engine, summary)
    _print_alerts(database.engine)
    _print_picture(database.engine, settings, picture)
    return 0


def _start_thread(started: ExitStack, target: Callable[[], None], stop: threading.Event, name: str,
                  timeout_s: float) -> threading.Thread:
    """Run `target` in a thread that `started` stops (set `stop`, then wait for it) when it closes."""
    thread = threading.Thread(target=target, name=name, daemon=True)

    def stop_and_join() -> None:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=timeout_s)
        if thread.is_alive():
            log.warning("thread_did_not_stop", extra={"kv": {"thread": name, "timeout_s": timeout_s}})

    started.callback(stop_and_join)
    thread.start()
    return thread


def _replay(settings: Settings, news_file: Path, total: int, speedup: float) -> ReplaySummary:
    producer = create_producer(kafka_options(settings, "finsent-demo"))
    try:
        with tqdm(total=total, unit="msg", desc=f"replaying at {speedup:g}x", file=sys.stderr, mininterval=0.5) as bar:
            return replay(news_file, producer, settings.topic_news, speedup=speedup, max_message_bytes=settings.max_message_bytes,
                          time_window=settings.time_window, progress=bar.update)
    finally:
        producer.close(timeout=10)


def _wait_for_worker(engine: Engine, article_ids: list[str], timeout_s: float = 300.0) -> None:
    """Until every replayed article is in the database (the worker may still be draining the topic)."""
    deadline = time.monotonic() + timeout_s
    with tqdm(total=len(article_ids), unit="article", desc="worker catching up", file=sys.stderr, mininterval=0.5) as bar:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                stored = stored_article_count(connection, article_ids)
            bar.update(stored - bar.n)
            if stored >= len(article_ids):
                return
            time.sleep(0.5)
    raise TimeoutError(f"the worker stored fewer than {len(article_ids)} articles within {timeout_s:.0f}s")


def _valid_ids(news_file: Path, settings: Settings) -> list[str]:
    lines = read_news_file(news_file, settings.max_message_bytes, settings.time_window)
    return sorted({entry.item.id for entry in lines if isinstance(entry, ReplayLine)})


def _reset(engine: Engine) -> None:
    empty_all_tables(engine)
    print("finsent demo: database reset", file=sys.stderr)


def _print_summary(engine: Engine, summary: ReplaySummary) -> None:
    entities = entity_summary(engine, EPOCH, datetime.max.replace(tzinfo=timezone.utc)).head(_SUMMARY_ENTITIES)
    with engine.connect() as connection:
        total = stored_article_count(connection)
    print(f"\nreplayed {summary.sent} messages in {summary.elapsed_s:.0f}s; {total} articles in the database")
    print(f"{'entity':<10}{'articles':>10}{'sentiment':>11}{'negative':>10}")
    columns = ["entity", "articles", "mean_sentiment", "negative_share"]
    for entity, articles, sentiment, negative_share in entities[columns].itertuples(index=False):
        print(f"{entity:<10}{articles:>10}{_number(sentiment):>11}{_percent(negative_share):>10}")


def _final_alert_pass(settings: Settings, engine: Engine) -> None:
    """Judge every remaining bucket (the replay is over) and send what is due."""
    parts = build_parts(settings, engine)
    try:
        scheduler = AlertScheduler(parts, settings.alert_interval)
        scheduler.detect_once(close_all=True)
        scheduler.deliver_once()
    finally:
        parts.close()


def _print_alerts(engine: Engine) -> None:
    alerts = alerts_frame(engine).sort_values(["bucket_start", "id"])
    print(f"\n{len(alerts)} alerts raised" + (":" if len(alerts) else " (see `finsent backtest` to tune the rules)"))
    for alert in alerts.itertuples():
        evidence = alert.evidence or {}
        first = evidence.get("first") or evidence
        print(f"  #{alert.id} {alert.entity:<6} {alert.rule:<15} {alert.severity:<8} bucket {alert.bucket_start:%H:%M}Z  "
              f"{first.get('observed', alert.value):.0f} adverse stories in {first.get('horizon', '?')} where "
              f"{first.get('expected', alert.baseline):.2f} were expected (chance {first.get('tail_probability', float('nan')):.1e})"
              f", {alert.state}")
        for headline in first.get("top_negative", [])[:2]:
            print(f"      {headline['p_negative']:.2f}  {headline['headline']}  [{headline['id']}]")


def _print_picture(engine: Engine, settings: Settings, picture: Path | None) -> None:
    """Draw as `finsent plot` does without --width: a long --file history draws at a coarser width."""
    if picture is None:
        print("\npicture: skipped (--no-plot); `finsent plot` draws it from the database later")
        return
    request = PlotRequest(width_seconds=None, market_entity=settings.market_entity,
                          stored_widths=settings.bucket_widths)
    summary = write_plot(engine, request, picture)
    print(f"\npicture: {picture} ({', '.join(summary.entities)}; {summary.resolution.text()}; "
          "`finsent plot --help` draws others)")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _where(settings: Settings) -> str:
    return "from FINSENT_DATABASE_URL" if settings.database_url else f"embedded under {settings.data_dir}"
