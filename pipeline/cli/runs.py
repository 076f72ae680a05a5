"""The commands that run the system: `worker`, `scheduler`, `demo`, and feeding it with `produce` and `topics`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from consumers.kafka_clients import create_producer, ensure_topics
from consumers.replay import count_records, replay
from pipeline.cli.database import opened_database
from pipeline.config import Settings
from pipeline.counts import positive_float, positive_int
from pipeline.kafka_settings import kafka_options


def add_run_commands(commands: Any) -> None:
    worker = commands.add_parser("worker", description="consume news, store articles and scores (runs until SIGTERM/Ctrl-C)")
    worker.add_argument("--processes", type=positive_int, default=1,
                        help="run this many worker processes in one consumer group, the cores split among them "
                             "(useful up to FINSENT_TOPIC_PARTITIONS; default 1)")
    worker.set_defaults(handler=run_worker)

    scheduler = commands.add_parser("scheduler", description="run detection passes and send notifications (runs until SIGTERM/Ctrl-C)")
    scheduler.add_argument("--once", action="store_true", help="run one detection pass, send what is due, and exit (cron style)")
    scheduler.set_defaults(handler=run_scheduler)

    demo = commands.add_parser("demo", description="run the whole system on embedded defaults with the shipped sample news")
    demo.add_argument("--reset", action="store_true", help="empty the demo database first")
    demo.add_argument("--speedup", type=positive_float, default=240.0, help="time compression of the replay (default 240)")
    demo.add_argument("--file", type=Path, help="replay this news file instead of the shipped sample")
    picture = demo.add_mutually_exclusive_group()
    picture.add_argument("--plot", type=Path, help="where to write the picture (default: finsent-demo.png in FINSENT_DATA_DIR)")
    picture.add_argument("--no-plot", action="store_true", help="draw no picture (`finsent plot` can draw it later)")
    demo.set_defaults(handler=run_demo)

    produce = commands.add_parser("produce", description="replay a JSONL or CSV news file onto the news topic")
    produce.add_argument("file", type=Path, help="news file: .jsonl/.ndjson or .csv, optionally .gz")
    produce.add_argument("--topic", help="target topic (default FINSENT_TOPIC_NEWS)")
    produce.add_argument("--rate", type=positive_float, help="at most this many messages per second")
    produce.add_argument(
        "--speedup", type=positive_float, help="keep the spacing of event times, compressed by this factor (e.g. 600)"
    )
    produce.set_defaults(handler=produce_news)

    topics = commands.add_parser("topics", description="create the news, dead-letter and alerts topics if missing")
    topics.add_argument("--partitions", type=positive_int, help="partitions per topic (default FINSENT_TOPIC_PARTITIONS)")
    topics.set_defaults(handler=create_topics)


def run_worker(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline.interruption import stop_on_signals

    if arguments.processes > 1:
        from pipeline.worker_processes import WorkerGroup

        group = WorkerGroup(settings, arguments.processes)
        stop_on_signals(group.stop)
        return group.run()

    from pipeline.metrics import Metrics
    from pipeline.worker import Worker

    metrics = Metrics(settings.metrics_port, settings.metrics_host)
    worker = Worker(settings, metrics=metrics)
    stop_on_signals(worker.stop)
    metrics.serve()  # first: a taken port fails at once, not after the model has loaded
    worker.start()
    worker.run()
    return 0


def run_scheduler(settings: Settings, arguments: argparse.Namespace) -> int:
    import threading

    from pipeline.alerting.scheduler import AlertScheduler, build_parts
    from pipeline.interruption import stop_on_signals
    from pipeline.metrics import Metrics

    # --once (cron) serves no endpoint: it would clash with a long-running scheduler's port.
    metrics = Metrics(None if arguments.once else settings.metrics_port, settings.metrics_host)
    metrics.serve()
    with opened_database(settings) as engine:
        parts = build_parts(settings, engine)
        scheduler = AlertScheduler(parts, settings.alert_interval, metrics)
        if arguments.once:
            try:
                scheduler.detect_once()
                scheduler.deliver_once()
            finally:
                parts.close()
            return 0
        stop = threading.Event()
        stop_on_signals(stop)
        scheduler.run(stop)
    return 0


def run_demo(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline import demo

    if settings.log_level == "INFO":
        logging.getLogger().setLevel(logging.WARNING)  # the demo shows progress bars and a summary instead
    return demo.run_demo(settings, demo.DemoOptions(speedup=arguments.speedup, reset=arguments.reset,
                                                    news_file=arguments.file, plot=arguments.plot, no_plot=arguments.no_plot))


def create_topics(settings: Settings, arguments: argparse.Namespace) -> int:
    partitions = arguments.partitions or settings.topic_partitions
    names = [settings.topic_news, settings.topic_dead_letter] + ([settings.topic_alerts] if settings.alert_kafka else [])
    created = ensure_topics(kafka_options(settings, "finsent-admin"), names, partitions)
    print(f"created: {', '.join(created)}" if created else "topics already exist")
    return 0


def produce_news(settings: Settings, arguments: argparse.Namespace) -> int:
    from tqdm import tqdm

    topic = arguments.topic or settings.topic_news
    total = count_records(arguments.file)
    options = kafka_options(settings, "finsent-producer")
    ensure_topics(options, [topic], settings.topic_partitions)
    producer = create_producer(options)
    try:
        with tqdm(total=total, unit="msg", desc=f"producing to {topic}", file=sys.stderr, mininterval=0.5) as bar:
            summary = replay(
                arguments.file,
                producer,
                topic,
                rate_per_s=arguments.rate,
                speedup=arguments.speedup,
                max_message_bytes=settings.max_message_bytes,
                time_window=settings.time_window,
                progress=bar.update,
            )
    finally:
        producer.close(timeout=10)
    rate = summary.sent / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    print(f"sent {summary.sent} messages to {topic} in {summary.elapsed_s:.1f}s ({rate:.0f}/s); skipped {summary.skipped} invalid")
    for example in summary.skipped_examples:
        print(f"  skipped {example}", file=sys.stderr)
    return 0
