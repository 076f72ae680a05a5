"""The contract between the outbox and a notification channel."""

from __future__ import annotations

from typing import Protocol

from pipeline.alerting.notice import AlertNotice


class DeliveryFailed(Exception):
    """One attempt failed. `permanent` failures are never retried (a retry would fail the same way);
    `retry_after_s` carries a receiver's Retry-After hint, if any."""

    def __init__(self, reason: str, permanent: bool, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after_s = retry_after_s


class Channel(Protocol):
    """Sends a notice or raises DeliveryFailed; returning means the receiver accepted it."""

    @property
    def name(self) -> str: ...

    def send(self, notice: AlertNotice) -> None: ...

    def close(self) -> None: ...
