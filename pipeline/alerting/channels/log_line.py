"""The log channel: one structured line per notice, so alerts are visible with no receiver set up."""

from __future__ import annotations

import logging

from pipeline.alerting.notice import AlertNotice

log = logging.getLogger(__name__)


class LogChannel:
    @property
    def name(self) -> str:
        return "log"

    def send(self, notice: AlertNotice) -> None:
        evidence = notice.evidence
        level = logging.INFO if notice.state == "resolved" else logging.WARNING
        log.log(
            level,
            "alert_notice",
            extra={
                "kv": {
                    "alert_id": notice.alert_id,
                    "event": notice.event,
                    "entity": notice.entity,
                    "rule": notice.rule,
                    "severity": notice.severity,
                    "state": notice.state,
                    "bucket_start": notice.bucket_start.isoformat(),
                    "value": notice.value,
                    "baseline": notice.baseline,
                    "horizon": evidence.get("horizon"),
                    "tail_probability": evidence.get("tail_probability"),
                    "article_count": evidence.get("article_count"),
                    "top_negative_ids": ",".join(str(item.get("id")) for item in evidence.get("top_negative") or []),
                    "idempotency_key": notice.idempotency_key,
                    "title": notice.title(),
                }
            },
        )

    def close(self) -> None:
        """Nothing held between sends."""
