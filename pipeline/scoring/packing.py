"""Which token windows go through the model together: the cheapest plan under a cost model.

Why: a forward pass costs a fixed part (kernel launches, Python, thread wake-ups) plus a part per
padded token, and every row is padded to the pass's longest. Filling passes up to the token
budget put 14-token headlines beside 47-token body windows: on bench/ingest.py's stream 25% of the
tokens of 256-article batches were padding, and 69% of 18-article batches' (one body padded every
headline to its length); with this plan, 8% and 20%. The plan minimises the modelled time, fixed
cost per pass + rows x width per token, over every way of cutting the sorted windows into
consecutive groups (optimal for this cost: a group's width is its longest row, so an optimal plan
never interleaves lengths). Where passes are cheap relative to tokens (a CPU) it cuts between
lengths; where the fixed cost dominates (a GPU) it fills each pass. The two parts are fitted to
the passes the scorer has run (MeasuredForwardCost).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ForwardCost:
    """A forward pass's time modelled as `fixed_s + padded tokens x per_token_s`."""

    fixed_s: float
    per_token_s: float

    @property
    def fixed_tokens(self) -> float:
        """The fixed cost in tokens' worth of time: what one more pass must save in padding to pay."""
        return self.fixed_s / self.per_token_s

    def seconds(self, rows: int, width: int) -> float:
        return self.fixed_s + rows * width * self.per_token_s

    @classmethod
    def fitted(cls, samples: Sequence[tuple[int, float]]) -> ForwardCost:
        """Least squares over (padded tokens, seconds) of timed passes; both parts kept positive."""
        tokens = np.array([float(count) for count, _ in samples])
        seconds = np.array([float(elapsed) for _, elapsed in samples])
        if len(samples) < 2 or np.ptp(tokens) == 0:
            raise ValueError("fitting a forward cost needs passes of at least two sizes")
        slope, intercept = np.polyfit(tokens, seconds, 1)
        per_token = max(float(slope), 1e-9)
        return cls(max(float(intercept), per_token), per_token)


def plan_passes(lengths: Sequence[int], token_budget: int, max_rows: int, cost: ForwardCost) -> list[range]:
    """Cut windows sorted by length (ascending) into passes: ranges of positions, in order.

    Each pass holds at most `max_rows` rows and rows x its longest row <= `token_budget` (a single
    window longer than the budget goes alone). Groups are cut only between distinct lengths, which
    loses nothing: two windows of one length cost the same wherever the cut falls. A group larger
    than its row cap is split into full passes from the long end."""
    count = len(lengths)
    if count == 0:
        return []
    sorted_lengths = np.asarray(lengths, dtype=np.int64)
    if np.any(np.diff(sorted_lengths) < 0):
        raise ValueError("plan_passes needs lengths in ascending order")
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(sorted_lengths)) + 1, [count]))
    """Block b (windows of one length) covers positions bounds[b]:bounds[b + 1]."""
    widths = sorted_lengths[bounds[1:] - 1]
    fixed = cost.fixed_tokens
    best = np.zeros(len(bounds))
    start_of = np.zeros(len(bounds), dtype=np.int64)
    for end in range(1, len(bounds)):
        width = int(widths[end - 1])
        rows = bounds[end] - bounds[:end]
        totals = best[:end] + np.ceil(rows / _row_cap(width, token_budget, max_rows)) * fixed + rows * width
        start_of[end] = int(np.argmin(totals))
        best[end] = totals[start_of[end]]
    passes: list[range] = []
    end = len(bounds) - 1
    while end > 0:
        first, last = int(bounds[start_of[end]]), int(bounds[end])
        cap = _row_cap(int(widths[end - 1]), token_budget, max_rows)
        while last > first:
            passes.append(range(max(first, last - cap), last))
            last -= cap
        end = int(start_of[end])
    return passes[::-1]


def _row_cap(width: int, token_budget: int, max_rows: int) -> int:
    return max(1, min(max_rows, token_budget // max(1, width)))


_SPREAD_TO_FIT = 4
"""Fit only over passes whose sizes differ at least this much: two nearby sizes give no slope."""


class MeasuredForwardCost:
    """The forward cost fitted to the passes this scorer actually ran, recent ones only.

    Why measured, and in place: the fixed and per-token parts differ by model, device, precision
    and by what else runs on the cores (the worker's own threads, the broker, PostgreSQL), and
    they drift with it. Until enough passes of different sizes were seen, `current` is the
    device's prior. Thread-safe: every model lane observes its own passes, and readers take
    `current`, an immutable value replaced whole."""

    def __init__(self, prior: ForwardCost, window: int = 256, refit_every: int = 16, min_samples: int = 8) -> None:
        self.current = prior
        self._samples: deque[tuple[int, float]] = deque(maxlen=window)
        self._refit_every = refit_every
        self._min_samples = min_samples
        self._since_fit = 0
        self._lock = threading.Lock()

    def observe(self, padded_tokens: int, seconds: float) -> None:
        with self._lock:
            self._samples.append((padded_tokens, seconds))
            self._since_fit += 1
            if self._since_fit < self._refit_every or len(self._samples) < self._min_samples:
                return
            self._since_fit = 0
            samples = list(self._samples)
        tokens = [count for count, _ in samples]
        if max(tokens) >= _SPREAD_TO_FIT * min(tokens):
            self.current = ForwardCost.fitted(samples)
