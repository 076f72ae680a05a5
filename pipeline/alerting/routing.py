"""Which channels an alert goes to: routes by entity pattern and least severity.

`FINSENT_ALERT_ROUTES` holds routes separated by ';', each CHANNEL:ENTITY-GLOBS:MIN-SEVERITY,
for example `webhook:*:warning; email:PFE,JPM,BANK*:major`. With no routes every enabled
channel gets every alert; with routes a channel gets an alert only when one of its routes matches.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.alerting.severity import parse_severity, severity_rank

CHANNELS: tuple[str, ...] = ("log", "webhook", "slack", "email", "kafka", "alertmanager")

CHANNEL_SWITCHES: dict[str, str] = {
    "log": "always on",
    "webhook": "FINSENT_ALERT_WEBHOOK_URL",
    "slack": "FINSENT_ALERT_SLACK_WEBHOOK_URL",
    "email": "FINSENT_ALERT_SMTP_HOST and FINSENT_ALERT_EMAIL_TO",
    "kafka": "FINSENT_ALERT_KAFKA=true",
    "alertmanager": "FINSENT_ALERTMANAGER_URL",
}
"""What turns each channel on, for error messages about a channel that is off."""

_ROUTE_FORM = "expected routes such as 'webhook:*:warning; email:PFE,JPM:major' (CHANNEL:ENTITY-GLOBS:MIN-SEVERITY)"


@dataclass(frozen=True)
class AlertRoute:
    channel: str
    entity_globs: tuple[str, ...]
    min_severity: str

    def matches(self, entity: str, severity: str) -> bool:
        return severity_rank(severity) >= severity_rank(self.min_severity) and any(
            fnmatch.fnmatchcase(entity.upper(), glob.upper()) for glob in self.entity_globs
        )


def parse_routes(text: str) -> tuple[AlertRoute, ...]:
    routes: list[AlertRoute] = []
    for part in (piece.strip() for piece in text.split(";")):
        if not part:
            continue
        fields = [field.strip() for field in part.split(":")]
        if len(fields) != 3:
            raise ValueError(f"route {part!r} has {len(fields)} parts; {_ROUTE_FORM}")
        channel, globs, severity = fields
        if channel not in CHANNELS:
            raise ValueError(f"route {part!r}: unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
        entity_globs = tuple(glob.strip() for glob in globs.split(",") if glob.strip())
        if not entity_globs:
            raise ValueError(f"route {part!r} names no entity; use * for all. {_ROUTE_FORM}")
        try:
            min_severity = parse_severity(severity)
        except ValueError as error:
            raise ValueError(f"route {part!r}: {error}") from None
        routes.append(AlertRoute(channel, entity_globs, min_severity))
    return tuple(routes)


def channels_for(entity: str, severity: str, enabled: Iterable[str], routes: tuple[AlertRoute, ...]) -> list[str]:
    """The enabled channels this alert goes to, in CHANNELS order."""
    enabled_set = set(enabled)
    if not routes:
        return [channel for channel in CHANNELS if channel in enabled_set]
    return [
        channel for channel in CHANNELS
        if channel in enabled_set and any(route.channel == channel and route.matches(entity, severity) for route in routes)
    ]
