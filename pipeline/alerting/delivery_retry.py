"""When a failed delivery is tried again: exponential backoff with full jitter, capped, then give up.

After attempt n fails, the next one is due after a delay drawn uniformly from
[0, min(backoff_max, backoff * 2**(n-1))] ("full jitter": replicas and alerts that failed
together do not retry in step). A receiver's Retry-After hint, capped at backoff_max, is a floor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class DeliveryRetryPolicy:
    max_attempts: int = 8
    backoff_s: float = 5.0
    backoff_max_s: float = 900.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts={self.max_attempts}: expected 1 or more")
        if not 0 < self.backoff_s <= self.backoff_max_s:
            raise ValueError(
                f"backoff_s={self.backoff_s}, backoff_max_s={self.backoff_max_s}: expected 0 < backoff <= backoff max"
            )

    def gives_up_after(self, attempts: int) -> bool:
        """True when `attempts` attempts have been made and none may follow."""
        return attempts >= self.max_attempts

    def ceiling_s(self, attempts: int) -> float:
        """Longest delay after the attempts-th failed attempt (1-based)."""
        exponent = max(0, attempts - 1)
        if exponent >= 64:
            return self.backoff_max_s
        return min(self.backoff_max_s, self.backoff_s * 2**exponent)

    def delay_s(self, attempts: int, rng: random.Random, retry_after_s: float | None = None) -> float:
        delay = rng.uniform(0.0, self.ceiling_s(attempts))
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.backoff_max_s))
        return delay
