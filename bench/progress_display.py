"""Progress for the benchmarks: a tqdm bar on a terminal, a plain line every few seconds in logs."""

from __future__ import annotations

import sys
import time
from typing import Protocol

from tqdm import tqdm


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


class ProgressLine:
    """Progress for a stderr that is not a terminal (CI logs): a line every `interval_s`, not a redrawn bar."""

    def __init__(self, total: int, label: str, unit: str, interval_s: float) -> None:
        self._total, self._label, self._unit, self._interval_s = total, label, unit, interval_s
        self._count = 0
        self._next_line_at = time.monotonic() + interval_s

    def update(self, n: int = 1) -> None:
        self._count += n
        if time.monotonic() >= self._next_line_at:
            self.close()
            self._next_line_at = time.monotonic() + self._interval_s

    def close(self) -> None:
        print(f"{self._label}: {self._count}/{self._total} {self._unit}", file=sys.stderr, flush=True)


def progress(total: int, label: str, unit: str, interval_s: float = 1.0) -> Progress:
    if sys.stderr.isatty():
        return tqdm(total=total, desc=label, unit=unit, leave=False, dynamic_ncols=True)
    return ProgressLine(total, label, unit, interval_s)
