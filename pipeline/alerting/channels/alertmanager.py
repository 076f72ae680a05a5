"""Alertmanager channel: POST the alert to `<FINSENT_ALERTMANAGER_URL>/api/v2/alerts`, same retry rules as the webhook.

Body: a JSON list of one alert, as Alertmanager's API v2 takes it:

    labels       alertname (per rule: FinsentNegativeNews, FinsentMarketNegativeNews), entity, rule,
                 severity, horizon, width, source=finsent
    annotations  summary (one line), description (the notice text), evidence (top headlines, value vs baseline)
    startsAt     when finsent recorded the alert (fired_at)
    endsAt       firing: now + lease (4 x FINSENT_ALERTMANAGER_RESEND); resolved: the resolved time

Alertmanager resolves an alert by itself once its endsAt passes, so a firing alert is posted again
every resend interval (pipeline/alerting/alertmanager_resend.py); the lease lets three resends in a
row be lost before Alertmanager resolves it. `horizon` is the horizon of the moment that fired the
alert, so it stays the same for the whole episode. Labels name an alert in Alertmanager: when an
escalation changes the severity label, the alert under the old labels is ended in the same post, so it
does not linger until its lease runs out.

Userinfo in the URL (`https://user:pass@am.example`) is sent as HTTP basic auth, never in errors.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pipeline.alerting.channels.http_post import post
from pipeline.alerting.notice import TOP_HEADLINES_SHOWN, AlertNotice

ALERTNAME_PREFIX = "Finsent"
SOURCE = "finsent"
API_PATH = "/api/v2/alerts"
LEASE_RESENDS = 4
"""endsAt of a firing alert lies this many resend intervals ahead."""

Clock = Callable[[], datetime]
Labels = dict[str, str]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.3g}"


def alertname(rule: str) -> str:
    """Alertmanager's CamelCase alert name for a rule: negative_news -> FinsentNegativeNews, so each
    rule can be routed and inhibited on its own."""
    return ALERTNAME_PREFIX + "".join(part.capitalize() for part in rule.split("_") if part)


ALERTNAME = alertname("negative_news")
"""The company rule's name, the one most routes match."""


def alert_labels(notice: AlertNotice) -> Labels:
    """The label set naming this alert in Alertmanager (group and route by these)."""
    evidence = notice.evidence
    first = evidence.get("first")
    horizon = first.get("horizon") if isinstance(first, Mapping) and first.get("horizon") else evidence.get("horizon")
    return {
        "alertname": alertname(notice.rule),
        "entity": notice.entity,
        "rule": notice.rule,
        "severity": notice.severity,
        "horizon": str(horizon or ""),
        "width": f"{notice.width_seconds}s",
        "source": SOURCE,
    }


def summary(notice: AlertNotice) -> str:
    """One line: 'PFE negative_news major: adverse_stories 12 vs baseline 0.4'."""
    metric = notice.evidence.get("metric", "value")
    state = " (resolved)" if notice.state == "resolved" else ""
    return (f"{notice.entity} {notice.rule} {notice.severity}{state}: {metric} {_number(notice.value)} "
            f"vs baseline {_number(notice.baseline)}")


def evidence_text(notice: AlertNotice) -> str:
    """Value vs baseline, then the top negative headlines, one per line."""
    evidence = notice.evidence
    lines = [f"{evidence.get('metric', 'value')} {_number(notice.value)} vs baseline {_number(notice.baseline)}"
             + (f" over {evidence['horizon']}" if evidence.get("horizon") else "")]
    for item in list(evidence.get("top_negative") or [])[:TOP_HEADLINES_SHOWN]:
        score = f" (p_negative {_number(item['p_negative'])})" if "p_negative" in item else ""
        lines.append(f"- {item.get('headline', '')}{score}")
    return "\n".join(lines)


def alertmanager_alert(notice: AlertNotice, now: datetime, lease: timedelta) -> dict[str, Any]:
    """One element of the POST body. A resolved alert ends at its resolved time, but never before it
    started: a replay resolves at an event time older than the wall-clock fired_at, and Alertmanager
    refuses an alert that ends before it starts."""
    if notice.state == "resolved":
        resolved = notice.resolved_at or now
        ends_at = max(resolved, notice.fired_at)
    else:
        ends_at = now + lease
    return {
        "labels": alert_labels(notice),
        "annotations": {
            "summary": summary(notice),
            "description": notice.text(),
            "evidence": evidence_text(notice),
            "alert_id": str(notice.alert_id),
            "idempotency_key": notice.idempotency_key,
        },
        "startsAt": _rfc3339(notice.fired_at),
        "endsAt": _rfc3339(ends_at),
    }


def ended(alert: Mapping[str, Any], labels: Labels, now: datetime) -> dict[str, Any]:
    """`alert` under older `labels`, ending now: takes an alert off Alertmanager when its labels changed."""
    return {**alert, "labels": labels, "endsAt": _rfc3339(max(now, datetime.fromisoformat(alert["startsAt"])))}


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """The URL without userinfo, and the basic-auth header that userinfo stands for (urllib cannot
    send userinfo itself, and error messages must not show it)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url, {}
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=hostport)), {"Authorization": f"Basic {token}"}


class AlertmanagerChannel:
    """Posts notices to Alertmanager and remembers, in memory, when each firing alert was last posted
    and under which labels: the resender reads that to know what is due, and a restart (an empty
    memory) simply posts every firing alert again at once."""

    def __init__(self, url: str, resend_s: float, timeout_s: float = 10.0, clock: Clock = utc_now) -> None:
        base, self._auth = split_credentials(url)
        self._endpoint = base.rstrip("/") + API_PATH
        self.resend = timedelta(seconds=resend_s)
        self.lease = self.resend * LEASE_RESENDS
        self._timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._posted: dict[int, tuple[datetime, Labels]] = {}

    @property
    def name(self) -> str:
        return "alertmanager"

    def last_posted(self) -> dict[int, datetime]:
        """alert id -> when its firing state was last accepted by Alertmanager."""
        with self._lock:
            return {alert_id: at for alert_id, (at, _) in self._posted.items()}

    def send(self, notice: AlertNotice) -> None:
        now = self._clock()
        alert = alertmanager_alert(notice, now, self.lease)
        with self._lock:
            previous = self._posted.get(notice.alert_id)
        body = [alert]
        if previous is not None and previous[1] != alert["labels"]:
            body.append(ended(alert, previous[1], now))
        post(self._endpoint, json.dumps(body, ensure_ascii=False).encode("utf-8"),
             {"Content-Type": "application/json", **self._auth}, self._timeout_s)
        with self._lock:
            if notice.state == "resolved":
                self._posted.pop(notice.alert_id, None)
            else:
                self._posted[notice.alert_id] = (now, alert["labels"])

    def close(self) -> None:
        """Nothing held between sends."""
