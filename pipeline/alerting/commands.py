"""The alerting side of the `finsent` command line: scheduler, backtest, alerts, ack, silence."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from pipeline.cli_values import parse_moment
from pipeline.config import SETTING_SPECS, Settings, parse_duration_seconds
from pipeline.errors import UserError
from pipeline.safe_text import escape_controls
from pipeline.tabular import FORMATS, emit_frame, width_label

RULE_SETTINGS = (
    "alert_horizons", "alert_trailing", "alert_prior_weight", "alert_false_alarms_per_year", "alert_min_stories",
    "alert_resolve_buckets", "alert_repeat_interval",
)
_LISTED_ENTITIES = 20


def add_alert_commands(commands: Any) -> None:
    scheduler = commands.add_parser("scheduler", help="run detection passes and send notifications (runs until SIGTERM/Ctrl-C)")
    scheduler.add_argument("--once", action="store_true", help="run one detection pass, send what is due, and exit (cron style)")
    scheduler.set_defaults(handler=run_scheduler)

    backtest = commands.add_parser(
        "backtest", help="run detection over stored history as if live, and print the alerts that would have fired")
    backtest.add_argument("--from", dest="start", type=_moment, required=True, help="first bucket, ISO 8601 (e.g. 2026-03-01 or 2026-03-01T09:00Z)")
    backtest.add_argument("--to", dest="end", type=_moment, required=True, help="end (exclusive), ISO 8601")
    backtest.add_argument("--entity", help="judge only this entity (against the market prior where it has no history)")
    backtest.add_argument("--width", type=_duration, help="bucket width to judge (default: the first of FINSENT_ALERT_WIDTHS)")
    backtest.add_argument("--format", choices=FORMATS, default="table")
    backtest.add_argument("--out", type=Path, help="write the alerts here (format from --format) instead of stdout")
    backtest.add_argument("--write", action="store_true", help="also store the alerts in the live alert tables (nothing is sent)")
    backtest.add_argument("--events", type=Path, metavar="CSV",
                          help="score the alerts against known events (CSV with columns ticker,event_date): "
                               "per-event detection and delay, recall, unlisted alerts per ticker-month")
    backtest.add_argument("--evaluate-from", dest="evaluate_from", type=_moment, metavar="MOMENT",
                          help="with --events: count events, unlisted alerts and ticker-months from here on (default --from)")
    for field in RULE_SETTINGS:
        spec = next(s for s in SETTING_SPECS if s.field == field)
        backtest.add_argument(f"--{field.replace('_', '-')}", dest=f"rule_{field}", metavar="VALUE",
                              help=f"{spec.help} (default {spec.env_name} or {spec.default})")
    backtest.set_defaults(handler=run_backtest_command)

    alerts = commands.add_parser("alerts", help="list alerts")
    alerts.add_argument("--entity", help="only this entity")
    alerts.add_argument("--since", type=_duration,
                        help="only alerts whose bucket is in the last span of news (e.g. 6h, 1d), up to the newest article")
    alerts.add_argument("--state", choices=("firing", "resolved"))
    alerts.add_argument("--format", choices=FORMATS, default="table")
    alerts.set_defaults(handler=list_alerts)

    ack = commands.add_parser("ack", help="acknowledge an alert: no repeated notifications while it fires")
    ack.add_argument("alert_id", type=int, metavar="ID")
    ack.set_defaults(handler=acknowledge)

    silence = commands.add_parser("silence", help="record but do not notify alerts of an entity for a while")
    silence.add_argument("entity", metavar="ENTITY", nargs="?",
                         help="entity or glob, e.g. PFE or BANK* (a glob matching every entity, such as *, needs --all)")
    silence.add_argument("--all", action="store_true", help="silence every entity")
    silence.add_argument("--for", dest="duration", type=_duration, required=True,
                         help="how long, e.g. 2h; at most FINSENT_SILENCE_MAX (default 30d)")
    silence.add_argument("--reason", default="", help="why, for the record")
    silence.set_defaults(handler=add_silence)


def run_scheduler(settings: Settings, arguments: argparse.Namespace) -> int:
    import threading

    from pipeline.alerting.scheduler import AlertScheduler, build_parts
    from pipeline.database import open_database
    from pipeline.metrics import Metrics
    from pipeline.worker import stop_on_signals
    from storage.migrate import ensure_schema

    # --once (cron) serves no endpoint: it would clash with a long-running scheduler's port.
    metrics = Metrics(None if arguments.once else settings.metrics_port, settings.metrics_host)
    metrics.serve()
    database = open_database(settings)
    try:
        ensure_schema(database.engine)
        parts = build_parts(settings, database.engine)
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
    finally:
        database.close()
    return 0


def run_backtest_command(settings: Settings, arguments: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pipeline.alerting.backtest import run_backtest, write_backtest
    from pipeline.alerting.rules import DetectionRules
    from pipeline.alerting.scheduler import lifecycle_policy
    from pipeline.database import open_database
    from storage.migrate import ensure_schema

    if arguments.end <= arguments.start:
        raise UserError(f"--to {arguments.end.isoformat()} must be after --from {arguments.start.isoformat()}")
    settings = _with_rule_overrides(settings, arguments)
    events = _known_events(arguments)
    width = arguments.width or settings.judged_widths[0]
    if width not in settings.bucket_widths:
        raise UserError(f"--width {width}s is not a stored bucket width; choose one of "
                        f"{', '.join(f'{w}s' for w in settings.bucket_widths)} (FINSENT_BUCKET_WIDTHS)")
    database = open_database(settings)
    try:
        ensure_schema(database.engine)
        with tqdm(total=None, unit="bucket", desc="backtest", file=sys.stderr, mininterval=0.5) as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = run_backtest(database.engine, DetectionRules.from_settings(settings), lifecycle_policy(settings),
                                  width, arguments.start, arguments.end, settings.market_entity, arguments.entity, progress)
        print(f"judged {result.buckets} buckets of {width}s for {result.entities} entities: "
              f"{len(result.alerts)} alerts would have fired", file=sys.stderr)
        if events is None:
            emit_frame(result.alerts, arguments.format, arguments.out, empty="no alerts")
        else:
            _emit_evaluated(database.engine, result.alerts, events, settings.market_entity, arguments)
        if arguments.write:
            stored = write_backtest(database.engine, result, width)
            print(f"stored {stored.transitions.get('fired', 0)} new alerts "
                  f"({stored.already_stored} already stored); no notification sent", file=sys.stderr)
    finally:
        database.close()
    return 0


def _known_events(arguments: argparse.Namespace) -> pd.DataFrame | None:
    """The --events file, checked with --evaluate-from and --format before any database work."""
    from pipeline.alerting.events_file import read_events

    if arguments.events is None:
        if arguments.evaluate_from is not None:
            raise UserError("--evaluate-from bounds the scoring of --events: add --events FILE.csv, or drop --evaluate-from")
        return None
    if arguments.format == "csv" and arguments.out is None:
        raise UserError("--format csv with --events would mix the alerts and the evaluation on stdout: add --out FILE "
                        "for the alerts (the evaluation then prints on stdout), or use --format table or json")
    if arguments.evaluate_from is not None and not arguments.start <= arguments.evaluate_from < arguments.end:
        raise UserError(f"--evaluate-from {arguments.evaluate_from.isoformat()} is outside the backtest "
                        f"[--from {arguments.start.isoformat()}, --to {arguments.end.isoformat()}): choose a moment inside it")
    return read_events(arguments.events)


def _emit_evaluated(engine: Engine, alerts: pd.DataFrame, events: pd.DataFrame, market_entity: str,
                    arguments: argparse.Namespace) -> None:
    """The alerts as usual (stdout or --out), then their evaluation against the known events: one
    JSON document with both keys for --format json on stdout, else the per-event table and figures."""
    import json

    from pipeline.alerting.evaluation import DETECTION_BEFORE, evaluate_alerts
    from pipeline.alerting.evaluation_report import evaluation_document, evaluation_text
    from storage.queries import entity_days

    evaluate_from = arguments.evaluate_from or arguments.start
    since = evaluate_from  # and back to the detection window of the earliest event, for its delay
    if len(events):
        earliest = datetime.combine(events["event_date"].min(), time(), timezone.utc)
        since = min(since, _span_before(earliest, int(DETECTION_BEFORE.total_seconds())))
    with engine.connect() as connection:
        coverage = entity_days(connection, since, arguments.end)
    if arguments.entity is not None:  # one entity judged: its events and its ticker-months only
        events = events[events["ticker"] == arguments.entity]
        coverage = coverage[coverage["entity"] == arguments.entity]
    evaluation = evaluate_alerts(alerts, events, coverage, market_entity, evaluate_from, arguments.end)
    if arguments.format != "json":
        emit_frame(alerts, arguments.format, arguments.out, empty="no alerts")
        if arguments.out is None:
            sys.stdout.write("\n")
        sys.stdout.write(evaluation_text(evaluation, market_entity))
        return
    document: dict[str, Any] = {"evaluation": evaluation_document(evaluation, market_entity)}
    if arguments.out is None:
        document = {"alerts": json.loads(alerts.to_json(orient="records", date_format="iso")), **document}
    else:
        emit_frame(alerts, "json", arguments.out)
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def list_alerts(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline.database import open_database
    from storage.queries import alerts_frame

    from storage.queries import data_clock

    database = open_database(settings)
    try:
        since = None
        if arguments.since:
            with database.engine.connect() as connection:
                present, _ = data_clock(connection)
            since = _span_before(present, arguments.since)
        frame = alerts_frame(database.engine, arguments.entity, since, arguments.state)
    finally:
        database.close()
    if arguments.format == "table":
        frame = frame.assign(
            horizon=frame["evidence"].map(lambda e: (e or {}).get("horizon")),
            chance=frame["evidence"].map(lambda e: (e or {}).get("tail_probability")),
            articles=frame["evidence"].map(lambda e: (e or {}).get("article_count")),
            width=frame["width_seconds"].map(width_label),
        )[["id", "entity", "rule", "width", "bucket_start", "severity", "state", "horizon", "value", "baseline", "chance",
           "articles", "acked_at", "silenced"]]
    emit_frame(frame, arguments.format, empty="no alerts")
    return 0


def acknowledge(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline.database import open_database
    from storage.alerts import acknowledge_alert

    database = open_database(settings)
    try:
        alert = acknowledge_alert(database.engine, arguments.alert_id, datetime.now(timezone.utc))
    finally:
        database.close()
    if alert is None:
        raise UserError(f"no alert with id {arguments.alert_id}; `finsent alerts` lists them")
    print(f"acknowledged alert {arguments.alert_id} ({alert.entity} {alert.rule}, {alert.state}): no repeated notifications")
    return 0


def add_silence(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline.alerting.alert_store import is_silenced
    from pipeline.database import open_database
    from storage.alerts import add_silence as store_silence

    glob = _silence_glob(arguments.entity, arguments.all)
    if arguments.duration > settings.silence_max:
        raise UserError(
            f"--for {width_label(arguments.duration)} is longer than FINSENT_SILENCE_MAX={width_label(settings.silence_max)}: "
            "silence for at most that long (and renew it if need be), or raise FINSENT_SILENCE_MAX"
        )
    try:
        ends_at = datetime.now(timezone.utc) + timedelta(seconds=arguments.duration)
    except OverflowError:
        raise UserError(f"--for {width_label(arguments.duration)} ends after the year 9999: silence for less "
                        f"(and lower FINSENT_SILENCE_MAX={width_label(settings.silence_max)})") from None
    database = open_database(settings)
    try:
        known = store_silence(database.engine, glob, ends_at, arguments.reason)
    finally:
        database.close()
    what = f"every entity ({escape_controls(glob)})" if arguments.all else escape_controls(glob)
    print(f"silenced {what} until {ends_at.isoformat(timespec='seconds')}: alerts are recorded, not sent")
    print(_matched_line([entity for entity in known if is_silenced(entity, [glob])]))
    return 0


def _matches_every_entity(glob: str) -> bool:
    """`*`, `**`, `?*`, `*?*`: globs that fnmatch matches against every name (no entity name is empty)."""
    return "*" in glob and glob.replace("*", "") in ("", "?")


def _silence_glob(entity: str | None, everything: bool) -> str:
    """The glob to store: ENTITY upper-cased, or `*` for --all; a glob that silences everything needs --all."""
    glob = (entity or "").strip().upper()
    if everything:
        if glob and not _matches_every_entity(glob):
            raise UserError(f"--all silences every entity; drop {glob!r} or drop --all to silence {glob!r} only")
        return glob or "*"
    if not glob:
        raise UserError("name the entity or glob to silence (e.g. PFE or 'BANK*'), or give --all for every entity")
    if _matches_every_entity(glob):
        raise UserError(f"{glob!r} matches every entity and would mute all notifications: add --all if that is meant")
    return glob


def _matched_line(entities: list[str]) -> str:
    if not entities:
        return "it matches no entity in the database yet (check the spelling; entities that appear later are silenced too)"
    shown = ", ".join(escape_controls(entity) for entity in entities[:_LISTED_ENTITIES])
    more = f" and {len(entities) - _LISTED_ENTITIES} more" if len(entities) > _LISTED_ENTITIES else ""
    return f"it matches {len(entities)} known {'entity' if len(entities) == 1 else 'entities'}: {shown}{more}"


def _with_rule_overrides(settings: Settings, arguments: argparse.Namespace) -> Settings:
    raw = {field: getattr(arguments, f"rule_{field}") for field in RULE_SETTINGS if getattr(arguments, f"rule_{field}") is not None}
    changes: dict[str, Any] = {}
    for field, text in raw.items():
        spec = next(s for s in SETTING_SPECS if s.field == field)
        try:
            changes[field] = spec.parse(text)
        except ValueError as error:
            raise UserError(f"--{field.replace('_', '-')} {text!r} is invalid: {error}") from None
    return settings.replace(**changes)


def _span_before(moment: datetime, seconds: int) -> datetime:
    """`seconds` before `moment`, or the first moment of the calendar when that is further back."""
    try:
        return moment - timedelta(seconds=seconds)
    except OverflowError:
        return datetime.min.replace(tzinfo=timezone.utc)


def _moment(text: str) -> datetime:
    try:
        return parse_moment(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _duration(text: str) -> int:
    try:
        return parse_duration_seconds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
