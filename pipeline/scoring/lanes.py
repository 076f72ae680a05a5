"""How many batches the model scores at once, and on how many CPU threads each.

Why lanes: a transformer pass over a live batch (a few dozen short windows) is a chain of small
matrix products, and each one split over more intra-op threads waits on their barrier more than
it gains; the Python between the products runs on one core meanwhile. Two passes side by side,
each on half of the threads, keep every core busy: the fast model alone, batches of 32 on 2
cores, scored 308-355 articles/s in two lanes of one thread against 201-209 in one lane of two
(bench/ingest.py measures both in each run). A GPU runs one pass at a time anyway: one lane.

`torch.set_num_threads` from a thread sets that thread's own OpenMP team size, so each lane sets
its share in its own thread (`enter`), and the process's other threads keep theirs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

CPU_LANES = 2
"""The default on a CPU with at least two threads for the model (see the module docstring)."""


@dataclass(frozen=True)
class ModelLanes:
    count: int = 1
    threads_per_lane: int | None = None
    """torch threads of each lane's own thread (set in it, as a new thread would otherwise take
    whatever another thread set last); None leaves them as they are (a GPU)."""

    @classmethod
    def for_device(cls, device: torch.device, threads: int | None = None, lanes: int = 0) -> ModelLanes:
        """`threads`: the model's CPU threads (None: every core); `lanes` 0: the default for the device."""
        if device.type != "cpu":
            return cls(max(1, lanes))
        threads = threads or os.cpu_count() or 1
        count = min(lanes or CPU_LANES, threads)
        return cls(count, threads // count)

    def enter(self) -> None:
        """Give the calling thread its lane's share of the cores (called once by each lane's thread)."""
        if self.threads_per_lane is not None:
            torch.set_num_threads(self.threads_per_lane)
