"""How many batches the model scores at once, and on how many CPU threads each.

Why lanes: a transformer pass over a live batch (a few dozen short windows) is a chain of small
matrix products, and each one split over more intra-op threads waits on their barrier more than
it gains; the Python between the products runs on one core meanwhile. Two passes side by side,
each on half of the threads, keep every core busy: the fast model alone, batches of 32 on 2
cores, scored 308-355 articles/s in two lanes of one thread against 201-209 in one lane of two
(bench/ingest.py measures both in each run). A GPU runs one pass at a time anyway: one lane.

`torch.set_num_threads` from a thread sets that thread's own OpenMP team size, so each lane sets
its share in its own thread (`enter`), and the process's other threads keep theirs.

The GIL: an eager forward pass releases it inside each operation and takes it back between
them, hundreds of times per pass. A thread waiting for the GIL gets it only once the holder has
run for the interpreter's switch interval (5 ms by default), so a lane behind the transaction's
Python or the validation's JSON could wait up to that long per operation. `share_the_gil` sets
GIL_SWITCH_INTERVAL_S for the worker's process. Measured on 2 cores, fast model in two lanes
beside a thread running pure Python: 17-23 articles/s at 5 ms against 92-101 at 0.5 ms (batches
of 32), 60-81 against 182-195 (batches of 256); in bench/ingest.py, two runs each, the worker's
ratio to the model alone was 0.849-0.864 at 5 ms and 0.889-0.900 at 0.5 ms.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

CPU_LANES = 2
"""The default on a CPU with at least two threads for the model (see the module docstring)."""
GIL_SWITCH_INTERVAL_S = 0.0005
"""A tenth of Python's default: a model lane waits at most this long for the GIL between operations."""


def share_the_gil(interval_s: float = GIL_SWITCH_INTERVAL_S) -> None:
    """Make the process hand the GIL over sooner (see the module docstring); never lengthens it."""
    if sys.getswitchinterval() > interval_s:
        sys.setswitchinterval(interval_s)
        log.debug("gil_switch_interval", extra={"kv": {"seconds": interval_s}})


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
