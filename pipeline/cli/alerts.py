"""`finsent alerts`, `ack` and `silence`: reading the stored alerts and quieting their notifications."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd

from pipeline.cli.database import opened_database
from pipeline.cli.values import duration_option
from pipeline.cli.window import add_window_arguments, resolve_window, window_request
from pipeline.config import Settings
from pipeline.entities import entity_name
from pipeline.errors import UserError
from pipeline.safe_text import escape_controls
from pipeline.tabular import FORMATS, emit_frame, width_label

_LISTED_ENTITIES = 20


def add_alert_commands(commands: Any) -> None:
    alerts = commands.add_parser("alerts", description="list alerts, newest bucket first (the window filters on their first bucket)")
    alerts.add_argument("--entity", help="only this entity")
    add_window_arguments(alerts)
    alerts.add_argument("--state", choices=("firing", "resolved"))
    alerts.add_argument("--format", choices=FORMATS, default="table")
    alerts.set_defaults(handler=list_alerts)

    ack = commands.add_parser("ack", description="acknowledge an alert: no repeated notifications while it fires")
    ack.add_argument("alert_id", metavar="ID", help="the alert's id (`finsent alerts` lists them)")
    ack.set_defaults(handler=acknowledge)

    silence = commands.add_parser("silence", description="record but do not notify alerts of an entity for a while")
    silence.add_argument("entity", metavar="ENTITY", nargs="?",
                         help="entity or glob, e.g. PFE or BANK* (a glob matching every entity, such as *, needs --all)")
    silence.add_argument("--all", action="store_true", help="silence every entity")
    silence.add_argument("--for", dest="duration", metavar="DURATION", required=True,
                         help="how long, e.g. 2h; at most FINSENT_SILENCE_MAX (default 30d)")
    silence.add_argument("--reason", default="", help="why, for the record")
    silence.set_defaults(handler=add_silence)


def list_alerts(settings: Settings, arguments: argparse.Namespace) -> int:
    from storage.queries import alerts_frame

    entity = None if arguments.entity is None else entity_name(arguments.entity, settings.market_entity)
    request = window_request(arguments)
    with opened_database(settings) as engine:
        window = resolve_window(engine, request, settings.time_window.earliest)
        frame = alerts_frame(engine, entity, window.start, arguments.state)
    if window.end is not None:
        frame = frame[frame["bucket_start"] < pd.Timestamp(window.end)].reset_index(drop=True)
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
    from storage.alerts import acknowledge_alert

    alert_id = _alert_id(arguments.alert_id)
    with opened_database(settings) as engine:
        alert = acknowledge_alert(engine, alert_id, datetime.now(timezone.utc))
    if alert is None:
        raise UserError(f"no alert with id {alert_id}; `finsent alerts` lists them")
    print(f"acknowledged alert {alert_id} ({alert.entity} {alert.rule}, {alert.state}): no repeated notifications")
    return 0


def add_silence(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline.alerting.alert_store import is_silenced
    from storage.alerts import add_silence as store_silence

    glob = _silence_glob(arguments.entity, arguments.all, settings.market_entity)
    seconds = duration_option("--for", arguments.duration)
    if seconds > settings.silence_max:
        raise UserError(
            f"--for {width_label(seconds)} is longer than FINSENT_SILENCE_MAX={width_label(settings.silence_max)}: "
            "silence for at most that long (and renew it if need be), or raise FINSENT_SILENCE_MAX"
        )
    try:
        ends_at = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    except OverflowError:
        raise UserError(f"--for {width_label(seconds)} ends after the year 9999: silence for less "
                        f"(and lower FINSENT_SILENCE_MAX={width_label(settings.silence_max)})") from None
    with opened_database(settings) as engine:
        known = store_silence(engine, glob, ends_at, arguments.reason)
    what = f"every entity ({escape_controls(glob)})" if arguments.all else escape_controls(glob)
    print(f"silenced {what} until {ends_at.isoformat(timespec='seconds')}: alerts are recorded, not sent")
    print(_matched_line([entity for entity in known if is_silenced(entity, [glob])]))
    return 0


def _alert_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"alert id {text!r} is not a whole number: give the id `finsent alerts` lists, e.g. finsent ack 42") from None


def _matches_every_entity(glob: str) -> bool:
    """`*`, `**`, `?*`, `*?*`: globs that fnmatch matches against every name (no entity name is empty)."""
    return "*" in glob and glob.replace("*", "") in ("", "?")


def _silence_glob(entity: str | None, everything: bool, market_entity: str) -> str:
    """The glob to store: ENTITY as every command names it, or `*` for --all; a glob that silences
    everything needs --all."""
    glob = entity_name(entity or "", market_entity)
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
