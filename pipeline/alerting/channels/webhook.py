"""JSON webhook: POST the notice payload, signed with HMAC-SHA256 when a secret is set.

Request: `POST <FINSENT_ALERT_WEBHOOK_URL>`, body = `AlertNotice.to_json()` (UTF-8), headers
`Content-Type: application/json`, `Idempotency-Key: <idempotency_key>` (the same on every re-send
of an event: drop repeats by it) and, with FINSENT_ALERT_WEBHOOK_SECRET set,

    X-Finsent-Timestamp: <unix seconds when this attempt was signed>
    X-Finsent-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>

To verify: take the header timestamp, the raw body bytes as received (before any JSON parsing),
compute hex(HMAC-SHA256(secret_utf8, timestamp_ascii + b"." + body)), compare it with the part after
`sha256=` in constant time, and reject timestamps more than a few minutes from your clock (replay).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from pipeline.alerting.channels.http_post import post
from pipeline.alerting.notice import AlertNotice

SIGNATURE_HEADER = "X-Finsent-Signature"
TIMESTAMP_HEADER = "X-Finsent-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Finsent-Signature value: `sha256=` + hex HMAC-SHA256 of `timestamp.body`."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class WebhookChannel:
    def __init__(
        self, url: str, secret: str = "", timeout_s: float = 10.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._url = url
        self._secret = secret
        self._timeout_s = timeout_s
        self._clock = clock

    @property
    def name(self) -> str:
        return "webhook"

    def send(self, notice: AlertNotice) -> None:
        body = notice.to_json().encode("utf-8")
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: notice.idempotency_key}
        if self._secret:
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = webhook_signature(self._secret, timestamp, body)
        post(self._url, body, headers, self._timeout_s)

    def close(self) -> None:
        """Nothing held between sends."""
