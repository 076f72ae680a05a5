"""What every channel sends about one alert event: a stable JSON payload and human text.

Channels never read the database: the outbox builds one `AlertNotice` from the `alerts` row and
the `alert_events` row a delivery points at, so a retry re-sends the same description of the same
event. Event-specific facts (kind, bucket, severity, value) come from the event row; the evidence
is the alert's evidence at send time.

JSON payload (`AlertNotice.payload()`, schema version 1; keys are sorted in `to_json()`):

| key | type | meaning |
|---|---|---|
| schema_version | int | 1; a new version adds keys or changes meanings |
| alert_id | int | id of the alert episode (`finsent alerts`) |
| dedup_key | string | the episode's unique key: fingerprint @ first bucket |
| idempotency_key | string | dedup_key / event label: the same for every re-send of this event |
| event | string | fired, escalated, repeated or resolved |
| entity, rule | string | who and which detection rule |
| width_seconds | int | width of the buckets judged |
| bucket_start | ISO 8601 | start of the bucket this event was judged on |
| first_bucket_start | ISO 8601 | start of the bucket the alert first fired on |
| severity | string | warning, major or critical, at this event |
| state | string | firing, or resolved for a resolved event |
| value, baseline | number | the rule's metric in the bucket and its baseline |
| evidence | object | the latest moment's keys (below); and first, peak, latest: each such a moment |
| fired_at | ISO 8601 | when the alert was recorded |
| resolved_at | ISO 8601 or null | set on resolved events only |
| acked | bool | whether someone acknowledged the alert |

A moment's keys: metric, observed, expected, horizon, tail_probability, false_alarms_per_year, threshold,
article_count, mean_p_negative, baseline_p_negative, baseline_source, bucket_start, bucket_end, window_start,
top_negative [{id, headline, p_negative, risk_tags, published_at}].
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.models import Alert, AlertEvent

SCHEMA_VERSION = 1
EVENT_KINDS: tuple[str, ...] = ("fired", "escalated", "repeated", "resolved")
TOP_HEADLINES_SHOWN = 5


def event_label(kind: str, bucket_start: datetime) -> str:
    """The `deliveries.event` text of an alert event: `kind@bucket_start` (ISO 8601 with zone)."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"{kind!r} is not an alert event kind; expected one of {', '.join(EVENT_KINDS)}")
    if bucket_start.tzinfo is None:
        raise ValueError(f"bucket_start {bucket_start.isoformat()} has no time zone; give an aware datetime")
    return f"{kind}@{bucket_start.isoformat()}"


def parse_event_label(label: str) -> tuple[str, datetime]:
    """`kind@bucket_start` -> (kind, bucket_start); ValueError naming the label when malformed."""
    kind, separator, when = label.partition("@")
    if not separator or kind not in EVENT_KINDS:
        raise ValueError(f"event label {label!r} is not KIND@BUCKET_START with KIND one of {', '.join(EVENT_KINDS)}")
    try:
        bucket_start = datetime.fromisoformat(when)
    except ValueError:
        raise ValueError(f"event label {label!r}: {when!r} is not an ISO 8601 time") from None
    if bucket_start.tzinfo is None:
        raise ValueError(f"event label {label!r}: the time has no zone")
    return kind, bucket_start


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _number(value: Any) -> str:
    """0.6200 -> '0.62', 40.0 -> '40', 0.0000021 -> '2.1e-06' (a chance must not round to 0);
    anything that is not a number is shown as it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value and abs(value) < 0.001:
        return f"{value:.2g}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class AlertNotice:
    alert_id: int
    dedup_key: str
    event: str
    event_label: str
    entity: str
    rule: str
    width_seconds: int
    bucket_start: datetime
    first_bucket_start: datetime
    severity: str
    value: float
    baseline: float
    evidence: Mapping[str, Any]
    fired_at: datetime
    resolved_at: datetime | None
    acked: bool

    @classmethod
    def from_rows(cls, alert: Alert, event: AlertEvent) -> AlertNotice:
        if event.alert_id != alert.id:
            raise ValueError(f"alert event {event.id} belongs to alert {event.alert_id}, not to alert {alert.id}")
        return cls(
            alert_id=alert.id,
            dedup_key=alert.dedup_key,
            event=event.kind,
            event_label=event_label(event.kind, event.bucket_start),
            entity=alert.entity,
            rule=alert.rule,
            width_seconds=alert.width_seconds,
            bucket_start=event.bucket_start,
            first_bucket_start=alert.bucket_start,
            severity=event.severity,
            value=event.value,
            baseline=alert.baseline,
            evidence=dict(alert.evidence or {}),
            fired_at=alert.fired_at,
            resolved_at=alert.resolved_at if event.kind == "resolved" else None,
            acked=alert.acked_at is not None,
        )

    @property
    def idempotency_key(self) -> str:
        """Same for every attempt at this event on every channel: receivers drop repeats by it."""
        return f"{self.dedup_key}/{self.event_label}"

    @property
    def state(self) -> str:
        return "resolved" if self.event == "resolved" else "firing"

    def payload(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "alert_id": self.alert_id,
            "dedup_key": self.dedup_key,
            "idempotency_key": self.idempotency_key,
            "event": self.event,
            "entity": self.entity,
            "rule": self.rule,
            "width_seconds": self.width_seconds,
            "bucket_start": _iso(self.bucket_start),
            "first_bucket_start": _iso(self.first_bucket_start),
            "severity": self.severity,
            "state": self.state,
            "value": self.value,
            "baseline": self.baseline,
            "evidence": dict(self.evidence),
            "fired_at": _iso(self.fired_at),
            "resolved_at": _iso(self.resolved_at),
            "acked": self.acked,
        }

    def to_json(self) -> str:
        """The payload as compact JSON with sorted keys: the same notice always gives the same bytes."""
        return json.dumps(self.payload(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)

    def title(self) -> str:
        """One line: '[MAJOR] PFE negative_news fired (5m bucket 2026-03-02T14:00:00+00:00)'."""
        label = "RESOLVED" if self.event == "resolved" else self.severity.upper()
        return f"[{label}] {self.entity} {self.rule} {self.event} ({_width(self.width_seconds)} bucket {_iso(self.bucket_start)})"

    def text(self) -> str:
        """Summary line, then why: observed vs expected adverse stories over the horizon, how rare that
        is, tone against the baseline, prior or own history, and the top negative headlines."""
        evidence = self.evidence
        metric = evidence.get("metric", "value")
        lines = [
            f"{self.entity} {self.rule} {self.event}: {metric} {_number(self.value)} vs baseline "
            f"{_number(self.baseline)}, severity {self.severity}, state {self.state}"
            + (", acknowledged" if self.acked else ""),
        ]
        facts = _facts(evidence)
        if facts:
            lines.append("Evidence: " + ", ".join(facts))
        peak = evidence.get("peak")
        if isinstance(peak, dict) and peak.get("bucket_start") != evidence.get("bucket_start") and _facts(peak):
            lines.append("Peak: " + ", ".join(_facts(peak)))
        headlines = list(evidence.get("top_negative") or [])[:TOP_HEADLINES_SHOWN]
        if headlines:
            lines.append("Top negative headlines:")
            for item in headlines:
                details = [f"id {item.get('id')}"]
                if "p_negative" in item:
                    details.append(f"p_negative {_number(item['p_negative'])}")
                if item.get("risk_tags"):
                    details.append("risk " + "/".join(str(tag) for tag in item["risk_tags"]))
                if item.get("published_at"):
                    details.append(f"published {item['published_at']}")
                lines.append(f"- {item.get('headline', '')} ({', '.join(details)})")
        lines.append(f"Alert {self.alert_id}, idempotency key {self.idempotency_key}")
        return "\n".join(lines)


def _facts(evidence: Mapping[str, Any]) -> list[str]:
    """The evidence of one moment as short phrases a person reads at a glance."""
    facts = []
    if evidence.get("observed") is not None and evidence.get("expected") is not None:
        facts.append(f"{_number(evidence['observed'])} adverse stories in {evidence.get('horizon', '?')} "
                     f"where {_number(evidence['expected'])} were expected")
    if evidence.get("tail_probability") is not None:
        facts.append(f"chance {_number(evidence['tail_probability'])} (about {_number(evidence.get('false_alarms_per_year'))} "
                     "such alarms per entity-year by chance)")
    if evidence.get("z_score") is not None:
        threshold = f" (threshold {_number(evidence['threshold'])})" if "threshold" in evidence else ""
        facts.append(f"z-score {_number(evidence['z_score'])}{threshold}")
    if evidence.get("mean_p_negative") is not None and evidence.get("baseline_p_negative") is not None:
        facts.append(f"mean p_negative {_number(evidence['mean_p_negative'])} vs {_number(evidence['baseline_p_negative'])}")
    if evidence.get("article_count") is not None:
        facts.append(f"{_number(evidence['article_count'])} articles")
    if "bucket_start" in evidence and "bucket_end" in evidence:
        facts.append(f"window {evidence.get('window_start', evidence['bucket_start'])} to {evidence['bucket_end']}")
    if evidence.get("baseline_source"):
        source = evidence["baseline_source"]
        facts.append("expected rate from " + ("the market-wide prior (little own history)" if source in ("prior", "market")
                                              else "its own history"))
    return facts


def _width(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
