"""`finsent worker --processes N`: N worker processes in one consumer group on one machine.

Why processes and not threads: tokenizing, entity matching and the rest of the worker's Python
hold the GIL, so past one process the only way to use more cores for them is more processes;
Kafka's consumer group then splits the partitions among them (so N is useful up to the topic's
partition count). The CPU cores are split too: each child gets FINSENT_TORCH_THREADS = cores / N
unless it is set, so the children do not oversubscribe the machine.

The supervisor forwards SIGTERM / SIGINT to every child and waits for them to finish their batch.
A child that exits with a configuration error (exit 2) stops the whole group with that error: a
permanent error is not retried. A child that dies otherwise (a crash, SIGKILL, the OOM killer) is
started again after a backoff, as a service manager would; the group's guarantees make that safe.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from consumers.batch_consumer import RetryPolicy
from pipeline.config import Settings
from pipeline.errors import EXIT_USER_ERROR

log = logging.getLogger(__name__)

STOP_GRACE_S = 60.0
"""How long children get to finish their batch after SIGTERM before they are killed."""
HEALTHY_AFTER_S = 60.0
"""A child that ran this long before dying restarts without backoff from earlier crashes."""


def child_environment(base: Mapping[str, str], settings: Settings, index: int, processes: int,
                      cores: int | None = None) -> dict[str, str]:
    """The environment of child `index` (0-based): its share of the cores and, where the metrics
    endpoint is on, its own port (FINSENT_METRICS_PORT + index)."""
    environment = dict(base)
    if not settings.torch_threads:
        environment["FINSENT_TORCH_THREADS"] = str(max(1, (cores or os.cpu_count() or 1) // processes))
    if settings.metrics_port is not None:
        environment["FINSENT_METRICS_PORT"] = str(settings.metrics_port + index)
    return environment


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    started: float
    crashes: int = 0


@dataclass
class WorkerGroup:
    """Runs and watches the children until stopped; `run` returns the exit code."""

    settings: Settings
    processes: int
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "pipeline.cli", "worker"])
    retry: RetryPolicy = RetryPolicy(initial_delay_s=1.0, max_delay_s=30.0)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> int:
        children = [self._start(index) for index in range(self.processes)]
        log.info("worker_group_started", extra={"kv": {"processes": self.processes,
                                                       "pids": ",".join(str(c.process.pid) for c in children)}})
        try:
            while not self.stop.is_set():
                for position, child in enumerate(children):
                    code = child.process.poll()
                    if code is None:
                        continue
                    if code == EXIT_USER_ERROR:
                        log.error("worker_child_failed", extra={"kv": {"index": child.index, "exit": code,
                                                                       "action": "stopping the group: fix the setting it named"}})
                        return code
                    children[position] = self._restart(child, code)
                self.stop.wait(0.5)
            return 0
        finally:
            self._stop_all(children)

    def _start(self, index: int, crashes: int = 0) -> _Child:
        environment = child_environment(os.environ, self.settings, index, self.processes)
        return _Child(index, subprocess.Popen(self.command, env=environment), time.monotonic(), crashes)

    def _restart(self, child: _Child, code: int) -> _Child:
        crashes = 1 if time.monotonic() - child.started > HEALTHY_AFTER_S else child.crashes + 1
        delay = self.retry.delay(crashes)
        log.warning("worker_child_exited", extra={"kv": {"index": child.index, "pid": child.process.pid, "exit": code,
                                                         "restart_in_s": round(delay, 1)}})
        if self.stop.wait(delay):
            return child  # stopped during the backoff: nothing to start only to stop it
        return self._start(child.index, crashes)

    def _stop_all(self, children: list[_Child]) -> None:
        for child in children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in children:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker_child_killed", extra={"kv": {"index": child.index, "pid": child.process.pid,
                                                                 "reason": f"still running {STOP_GRACE_S:.0f}s after SIGTERM"}})
                child.process.kill()
                child.process.wait()
        log.info("worker_group_stopped", extra={"kv": {"processes": len(children)}})
