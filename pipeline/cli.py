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
from pipeline.alerting.commands import add_alert_commands
from pipeline.cli_values import fraction, positive_float, positive_int
from pipeline.config import SETTING_SPECS, Settings
from pipeline.errors import UserError
from pipeline.interruption import interrupted_exit, terminate_as_interrupt
from pipeline.kafka_settings import kafka_options
from pipeline.logfmt import configure_logging
from pipeline.plot_command import add_plot_command
from pipeline.query_commands import add_query_commands
from pipeline.scoring.training_config import TrainingConfig
from storage.migrate import SchemaOutdated

EXIT_USER_ERROR = 2
_USER_ERRORS = (UserError, BrokerUnavailable, ReplayFileError, SchemaOutdated, EmbeddedBrokerError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    if not hasattr(arguments, "handler"):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        with terminate_as_interrupt():
            settings = Settings.load()
            configure_logging(settings.log_level)
            return int(arguments.handler(settings, arguments) or 0)
    except _USER_ERRORS as error:
        print(f"finsent: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as interruption:
        code, word = interrupted_exit(interruption)
        print(f"finsent: {word}", file=sys.stderr)
        return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finsent",
        description="Streaming financial-news sentiment monitor. Settings come from FINSENT_* variables (see `finsent config`).",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the whole system on embedded defaults with the shipped sample news")
    demo.add_argument("--reset", action="store_true", help="empty the demo database first")
    demo.add_argument("--speedup", type=positive_float, default=240.0, help="time compression of the replay (default 240)")
    demo.add_argument("--file", type=Path, help="replay this news file instead of the shipped sample")
    picture = demo.add_mutually_exclusive_group()
    picture.add_argument("--plot", type=Path, help="where to write the picture (default: finsent-demo.png in FINSENT_DATA_DIR)")
    picture.add_argument("--no-plot", action="store_true", help="draw no picture (`finsent plot` can draw it later)")
    demo.set_defaults(handler=_run_demo)

    worker = commands.add_parser("worker", help="consume news, store articles and scores (runs until SIGTERM/Ctrl-C)")
    worker.set_defaults(handler=_run_worker)

    add_alert_commands(commands)
    add_query_commands(commands)
    add_plot_command(commands)

    database = commands.add_parser("db", help="database schema")
    database_commands = database.add_subparsers(title="db commands", metavar="ACTION", required=True)
    upgrade = database_commands.add_parser("upgrade", help="migrate the database to this version's schema")
    upgrade.set_defaults(handler=_db_upgrade)
    current = database_commands.add_parser("current", help="print the schema revision of the database")
    current.set_defaults(handler=_db_current)

    topics = commands.add_parser("topics", help="create the news, dead-letter and alerts topics if missing")
    topics.add_argument("--partitions", type=positive_int, help="partitions per topic (default FINSENT_TOPIC_PARTITIONS)")
    topics.set_defaults(handler=_create_topics)

    produce = commands.add_parser("produce", help="replay a JSONL or CSV news file onto the news topic")
    produce.add_argument("file", type=Path, help="news file: .jsonl/.ndjson or .csv, optionally .gz")
    produce.add_argument("--topic", help="target topic (default FINSENT_TOPIC_NEWS)")
    produce.add_argument("--rate", type=positive_float, help="at most this many messages per second")
    produce.add_argument(
        "--speedup", type=positive_float, help="keep the spacing of event times, compressed by this factor (e.g. 600)"
    )
    produce.set_defaults(handler=_produce)

    train = commands.add_parser("train", help="fine-tune the sentiment model on labelled CSVs (text,label)")
    train.add_argument("--data", type=Path, nargs="+", required=True, help="CSV files with columns text,label")
    train.add_argument("--out", type=Path, help="directory for the trained model (not needed with --folds)")
    train.add_argument("--epochs", type=positive_int, default=TrainingConfig.epochs)
    train.add_argument("--batch-size", type=positive_int, default=TrainingConfig.batch_size)
    train.add_argument("--lr", type=positive_float, default=TrainingConfig.learning_rate, help="learning rate")
    train.add_argument("--rank", type=positive_int, default=TrainingConfig.lora_rank, help="LoRA rank")
    train.add_argument("--patience", type=positive_int, default=TrainingConfig.patience, help="epochs without improvement before stopping")
    train.add_argument("--seed", type=int, default=TrainingConfig.seed)
    train.add_argument("--validation-fraction", type=fraction, default=0.1, help="held out for early stopping")
    train.add_argument("--folds", type=positive_int, help="cross-validate with K folds instead of saving a model")
    train.add_argument("--target", help="name of the target-domain CSV: the validation split and the folds come from it (default: the first --data file)")
    train.add_argument("--report", type=Path, help="write the training or cross-validation report as JSON here (a cross-validation resumes from it)")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("eval", help="classification report of the configured model on a labelled CSV")
    evaluate.add_argument("--data", type=Path, required=True, help="CSV file with columns text,label")
    evaluate.add_argument("--json", type=Path, help="where to write the report (default: <data>.eval.json here)")
    evaluate.set_defaults(handler=_evaluate)

    config = commands.add_parser("config", help="show every setting, its variable, value and meaning")
    config.set_defaults(handler=_show_config)
    return parser


def _run_demo(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline.demo import DemoOptions, run_demo

    if settings.log_level == "INFO":
        logging.getLogger().setLevel(logging.WARNING)  # the demo shows progress bars and a summary instead
    return run_demo(settings, DemoOptions(speedup=arguments.speedup, reset=arguments.reset, news_file=arguments.file,
                                          plot=arguments.plot, no_plot=arguments.no_plot))


def _run_worker(settings: Settings, _arguments: argparse.Namespace) -> int:
    from pipeline.metrics import Metrics
    from pipeline.worker import Worker, stop_on_signals

    metrics = Metrics(settings.metrics_port, settings.metrics_host)
    worker = Worker(settings, metrics=metrics)
    stop_on_signals(worker.stop)
    metrics.serve()  # first: a taken port fails at once, not after the model has loaded
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
    names = [settings.topic_news, settings.topic_dead_letter] + ([settings.topic_alerts] if settings.alert_kafka else [])
    created = ensure_topics(kafka_options(settings, "finsent-admin"), names, partitions)
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


def _train(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline.scoring.workflows import cross_validate, load_training_data, train_and_save, write_json

    if arguments.folds is None and arguments.out is None:
        raise UserError("finsent train needs --out DIR for the model (or --folds K to cross-validate)")
    if arguments.folds is not None and arguments.folds < 2:
        raise UserError(f"--folds {arguments.folds}: cross-validation needs at least 2 folds")
    data = load_training_data(arguments.data)
    config = TrainingConfig(
        epochs=arguments.epochs, batch_size=arguments.batch_size, learning_rate=arguments.lr,
        lora_rank=arguments.rank, lora_alpha=2.0 * arguments.rank, patience=arguments.patience, seed=arguments.seed,
    )
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    on_file = arguments.target or arguments.data[0].name
    if on_file not in {path.name for path in arguments.data}:
        raise UserError(f"--target {on_file!r} is not one of the --data files: name one of them, e.g. {arguments.data[0].name}")
    if arguments.folds is not None:
        report = cross_validate(data, config, arguments.folds, on_file, arguments.validation_fraction, arguments.report)
        done = "" if report["complete"] else f" (partial: {len(report['per_fold'])} folds)"
        print(f"{arguments.folds}-fold cross-validation on {on_file}{done}: "
              f"accuracy {report['accuracy_mean']:.4f} ± {report['accuracy_std']:.4f}, "
              f"macro-F1 {report['macro_f1_mean']:.4f} ± {report['macro_f1_std']:.4f}")
        return 0
    command = "finsent train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else "finsent train"
    version, validation = train_and_save(data, config, arguments.out, arguments.validation_fraction, on_file, command)
    print(f"saved {version} to {arguments.out}\nvalidation ({validation.count} held-out examples):\n{validation.render()}")
    if arguments.report:
        write_json(arguments.report, validation.to_json() | {"model_version": version})
    return 0


def _evaluate(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline.scoring.dataset import read_labelled_csv
    from pipeline.scoring.workflows import evaluate_scorer, write_json
    from pipeline.worker import load_scorer

    examples = read_labelled_csv(arguments.data)
    scorer = load_scorer(settings)
    report = evaluate_scorer(scorer, examples)
    print(f"model {scorer.version} on {arguments.data} ({report.count} examples)\n{report.render()}")
    target = arguments.json or Path(f"{arguments.data.stem}.eval.json")
    write_json(target, report.to_json() | {"model_version": scorer.version, "data": str(arguments.data)})
    print(f"report written to {target}")
    return 0


def _show_config(settings: Settings, _arguments: argparse.Namespace) -> int:
    """Every setting with its value; secrets show as <secret>, URLs with their credentials hidden."""
    for spec in SETTING_SPECS:
        secret = " (secret)" if spec.secret else ""
        print(f"{spec.env_name}={spec.shown(getattr(settings, spec.field))}\n"
              f"    {spec.help}{secret} (default: {spec.default or 'empty'})")
    return 0


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
