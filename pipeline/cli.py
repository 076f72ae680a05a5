"""The `finsent` command line. User mistakes print one line `finsent: error: ...` and exit 2."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from consumers.embedded_broker import EmbeddedBrokerError
from consumers.kafka_clients import BrokerUnavailable, create_producer, ensure_topics
from consumers.replay import ReplayFileError, count_records, replay
from pipeline.config import SETTING_SPECS, Settings
from pipeline.errors import UserError
from pipeline.logfmt import configure_logging
from pipeline.worker import Worker, kafka_options, stop_on_signals
from storage.migrate import SchemaOutdated

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
_USER_ERRORS = (UserError, BrokerUnavailable, ReplayFileError, SchemaOutdated, EmbeddedBrokerError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    if not hasattr(arguments, "handler"):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        settings = Settings.load()
        configure_logging(settings.log_level)
        return int(arguments.handler(settings, arguments) or 0)
    except _USER_ERRORS as error:
        print(f"finsent: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finsent",
        description="Streaming financial-news sentiment monitor. Settings come from FINSENT_* variables (see `finsent config`).",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the whole system on embedded defaults with the shipped sample news")
    demo.add_argument("--reset", action="store_true", help="empty the demo database first")
    demo.add_argument("--speedup", type=_positive_float, default=240.0, help="time compression of the replay (default 240)")
    demo.add_argument("--file", type=Path, help="replay this news file instead of the shipped sample")
    demo.set_defaults(handler=_run_demo)

    worker = commands.add_parser("worker", help="consume news, store articles and scores (runs until SIGTERM/Ctrl-C)")
    worker.set_defaults(handler=_run_worker)

    database = commands.add_parser("db", help="database schema")
    database_commands = database.add_subparsers(title="db commands", metavar="ACTION", required=True)
    upgrade = database_commands.add_parser("upgrade", help="migrate the database to this version's schema")
    upgrade.set_defaults(handler=_db_upgrade)
    current = database_commands.add_parser("current", help="print the schema revision of the database")
    current.set_defaults(handler=_db_current)

    topics = commands.add_parser("topics", help="create the news and dead-letter topics if missing")
    topics.add_argument("--partitions", type=_positive_int, help="partitions per topic (default FINSENT_TOPIC_PARTITIONS)")
    topics.set_defaults(handler=_create_topics)

    produce = commands.add_parser("produce", help="replay a JSONL or CSV news file onto the news topic")
    produce.add_argument("file", type=Path, help="news file: .jsonl/.ndjson or .csv, optionally .gz")
    produce.add_argument("--topic", help="target topic (default FINSENT_TOPIC_NEWS)")
    produce.add_argument("--rate", type=_positive_float, help="at most this many messages per second")
    produce.add_argument(
        "--speedup", type=_positive_float, help="keep the spacing of event times, compressed by this factor (e.g. 600)"
    )
    produce.set_defaults(handler=_produce)

    config = commands.add_parser("config", help="show every setting, its variable, value and meaning")
    config.set_defaults(handler=_show_config)
    return parser


def _run_demo(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline.demo import DemoOptions, run_demo

    if settings.log_level == "INFO":
        logging.getLogger().setLevel(logging.WARNING)  # the demo shows progress bars and a summary instead
    return run_demo(settings, DemoOptions(speedup=arguments.speedup, reset=arguments.reset, news_file=arguments.file))


def _run_worker(settings: Settings, _arguments: argparse.Namespace) -> int:
    worker = Worker(settings)
    stop_on_signals(worker.stop)
    worker.start()
    worker.run()
    return 0


def _db_upgrade(settings: Settings, _arguments: argparse.Namespace) -> int:
    from pipeline.database import open_database
    from storage.migrate import upgrade

    database = open_database(settings)
    try:
        print(f"database at revision {upgrade(database.engine)}")
    finally:
        database.close()
    return 0


def _db_current(settings: Settings, _arguments: argparse.Namespace) -> int:
    from pipeline.database import open_database
    from storage.migrate import current_revision, head_revision

    database = open_database(settings)
    try:
        revision = current_revision(database.engine)
    finally:
        database.close()
    print(f"database revision: {revision or 'none (empty database)'}; this finsent needs: {head_revision()}")
    return 0


def _create_topics(settings: Settings, arguments: argparse.Namespace) -> int:
    partitions = arguments.partitions or settings.topic_partitions
    created = ensure_topics(kafka_options(settings, "finsent-admin"), [settings.topic_news, settings.topic_dead_letter], partitions)
    print(f"created: {', '.join(created)}" if created else "topics already exist")
    return 0


def _produce(settings: Settings, arguments: argparse.Namespace) -> int:
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
                progress=bar.update,
            )
    finally:
        producer.close(timeout=10)
    rate = summary.sent / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    print(f"sent {summary.sent} messages to {topic} in {summary.elapsed_s:.1f}s ({rate:.0f}/s); skipped {summary.skipped} invalid")
    for example in summary.skipped_examples:
        print(f"  skipped {example}", file=sys.stderr)
    return 0


def _show_config(settings: Settings, _arguments: argparse.Namespace) -> int:
    for spec in SETTING_SPECS:
        value = getattr(settings, spec.field)
        if spec.field == "database_url" and value:
            from storage.engine import redacted

            value = redacted(value)
        print(f"{spec.env_name}={value if value is not None else ''}\n    {spec.help} (default: {spec.default or 'empty'})")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
