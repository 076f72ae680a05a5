"""`finsent backtest`: detection over stored history as if live, optionally scored against known events."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, time, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from pipeline.cli.database import opened_database
from pipeline.cli.values import moment_option, stored_width
from pipeline.cli.window import CALENDAR_START, add_window_arguments, counted_back, resolve_window, window_request
from pipeline.config import SETTING_SPECS, Settings
from pipeline.entities import entity_name
from pipeline.errors import UserError
from pipeline.moments import moment_text
from pipeline.tabular import FORMATS, emit_frame

RULE_SETTINGS = (
    "alert_horizons", "alert_trailing", "alert_prior_weight", "alert_false_alarms_per_year", "alert_min_stories",
    "alert_resolve_buckets", "alert_repeat_interval",
)


def add_backtest_command(commands: Any) -> None:
    backtest = commands.add_parser(
        "backtest", description="run detection over stored history as if live, and print the alerts that would have fired")
    add_window_arguments(backtest, since=False, required=True)
    backtest.add_argument("--entity", help="judge only this entity (against the market prior where it has no history)")
    backtest.add_argument("--width",
                          help="bucket width to judge, one of FINSENT_BUCKET_WIDTHS (default: the first of FINSENT_ALERT_WIDTHS)")
    backtest.add_argument("--format", choices=FORMATS, default="table")
    backtest.add_argument("--out", type=Path, help="write the alerts here (format from --format) instead of stdout")
    backtest.add_argument("--write", action="store_true", help="also store the alerts in the live alert tables (nothing is sent)")
    backtest.add_argument("--events", type=Path, metavar="CSV",
                          help="score the alerts against known events (CSV with columns ticker,event_date): "
                               "per-event detection and delay, recall, unlisted alerts per ticker-month")
    backtest.add_argument("--evaluate-from", dest="evaluate_from", metavar="MOMENT",
                          help="with --events: count events, unlisted alerts and ticker-months from here on (default --from)")
    for field in RULE_SETTINGS:
        spec = next(s for s in SETTING_SPECS if s.field == field)
        backtest.add_argument(f"--{field.replace('_', '-')}", dest=f"rule_{field}", metavar="VALUE",
                              help=f"{spec.help} (default {spec.env_name} or {spec.default})")
    backtest.set_defaults(handler=run_backtest_command)


def run_backtest_command(settings: Settings, arguments: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pipeline.alerting.backtest import run_backtest, write_backtest
    from pipeline.alerting.scheduler import detection_rules, lifecycle_policy

    request = window_request(arguments)
    start, end = request.start, request.end
    assert start is not None and end is not None, "--from and --to are required"
    settings = _with_rule_overrides(settings, arguments)
    entity = None if arguments.entity is None else entity_name(arguments.entity, settings.market_entity)
    evaluate_from = moment_option("--evaluate-from", arguments.evaluate_from)
    events = _known_events(arguments, start, end, evaluate_from)
    width = settings.judged_widths[0] if arguments.width is None else stored_width(arguments.width, settings.bucket_widths)
    with opened_database(settings) as engine:
        start, end = resolve_window(engine, request, settings.time_window.earliest).bounds()
        with tqdm(total=None, unit="bucket", desc="backtest", file=sys.stderr, mininterval=0.5) as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = run_backtest(engine, detection_rules(settings), lifecycle_policy(settings),
                                  width, start, end, settings.market_entity, entity, progress)
        print(f"judged {result.buckets} buckets of {width}s for {result.entities} entities: "
              f"{len(result.alerts)} alerts would have fired", file=sys.stderr)
        if events is None:
            emit_frame(result.alerts, arguments.format, arguments.out, empty="no alerts")
        else:
            _emit_evaluated(engine, result.alerts, events, settings.market_entity, entity,
                            evaluate_from or start, end, arguments)
        if arguments.write:
            stored = write_backtest(engine, result, width)
            print(f"stored {stored.transitions.get('fired', 0)} new alerts "
                  f"({stored.already_stored} already stored); no notification sent", file=sys.stderr)
    return 0


def _known_events(arguments: argparse.Namespace, start: datetime, end: datetime,
                  evaluate_from: datetime | None) -> pd.DataFrame | None:
    """The --events file, checked with --evaluate-from and --format before any database work."""
    from pipeline.alerting.events_file import read_events

    if arguments.events is None:
        if evaluate_from is not None:
            raise UserError("--evaluate-from bounds the scoring of --events: add --events FILE.csv, or drop --evaluate-from")
        return None
    if arguments.format == "csv" and arguments.out is None:
        raise UserError("--format csv with --events would mix the alerts and the evaluation on stdout: add --out FILE "
                        "for the alerts (the evaluation then prints on stdout), or use --format table or json")
    if evaluate_from is not None and not start <= evaluate_from < end:
        raise UserError(f"--evaluate-from {moment_text(evaluate_from)} is outside the backtest "
                        f"[--from {moment_text(start)}, --to {moment_text(end)}): choose a moment inside it")
    return read_events(arguments.events)


def _emit_evaluated(engine: Engine, alerts: pd.DataFrame, events: pd.DataFrame, market_entity: str, entity: str | None,
                    evaluate_from: datetime, end: datetime, arguments: argparse.Namespace) -> None:
    """The alerts as usual (stdout or --out), then their evaluation against the known events: one
    JSON document with both keys for --format json on stdout, else the per-event table and figures."""
    import json

    from pipeline.alerting.evaluation import DETECTION_BEFORE, evaluate_alerts
    from pipeline.alerting.evaluation_report import evaluation_document, evaluation_text
    from storage.queries import entity_days

    since = evaluate_from  # and back to the detection window of the earliest event, for its delay
    if len(events):
        first_event = datetime.combine(events["event_date"].min(), time(), timezone.utc)
        since = min(since, counted_back(first_event, int(DETECTION_BEFORE.total_seconds()), CALENDAR_START))
    with engine.connect() as connection:
        coverage = entity_days(connection, since, end)
    if entity is not None:  # one entity judged: its events and its ticker-months only
        events = events[events["ticker"] == entity]
        coverage = coverage[coverage["entity"] == entity]
    evaluation = evaluate_alerts(alerts, events, coverage, market_entity, evaluate_from, end)
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
