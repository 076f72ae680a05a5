"""Batches through a chain of stage threads, in order, so that slow stages overlap.

Why: the model should never wait for Kafka or PostgreSQL. With stages "score" and "write", batch
N is written while N+1 is scored and the consumer's own thread fetches and validates N+2.

Each stage runs in its own thread and holds one job at a time; between stages sits a one-slot
queue, so a few batches at most are in flight and they leave in the order they entered. Jobs
come back through `completed()` to the submitting thread, which alone touches the KafkaConsumer
(it is not thread-safe) and commits their offsets in that same order.

Stage functions handle their own errors; one that raises anyway is logged, the job is marked
`crashed` and still passes through the later stages (which decide what that means for them), so
a bug costs one batch, never a thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

_QUEUE_POLL_S = 0.05
"""How often a blocked put or get looks at the stop flag."""


class Job(Protocol):
    crashed: bool


J = TypeVar("J", bound=Job)


class _Sentinel:
    """Tells a stage thread to finish."""


_END = _Sentinel()


class OrderedStages(Generic[J]):
    def __init__(self, stages: Sequence[Callable[[J], None]], *, stop: threading.Event, name: str = "stage") -> None:
        if not stages:
            raise ValueError("at least one stage is needed")
        self._stop = stop
        self._inputs: list[queue.Queue[J | _Sentinel]] = [queue.Queue(maxsize=1) for _ in stages]
        self._done: queue.Queue[J] = queue.Queue()
        self._in_flight = 0
        self._submitted = 0
        self._passed = [0] * len(stages)
        """Jobs each stage has finished (each count written by its own stage thread only)."""
        self._threads = [
            threading.Thread(target=self._run_stage, args=(index, stage), name=f"{name}-{index}", daemon=True)
            for index, stage in enumerate(stages)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not yet returned by `completed()`."""
        return self._in_flight

    def caught_up(self, stage: int) -> bool:
        """True when every job submitted has finished `stage` (negative counts from the end): a job
        submitted now would start on it at once."""
        return self._passed[stage] == self._submitted

    def has_room(self) -> bool:
        """True while fewer jobs are in flight than there are stages: a job submitted now would
        soon have a stage of its own, rather than queue behind a slower one."""
        return self._in_flight < len(self._threads)

    def submit(self, job: J, while_waiting: Callable[[], None] = lambda: None) -> bool:
        """Hand a job to the first stage, calling `while_waiting` while its slot is taken.

        Returns False, and the job is not taken, if stop was set first."""
        while not self._stop.is_set():
            try:
                self._inputs[0].put(job, timeout=_QUEUE_POLL_S)
            except queue.Full:
                while_waiting()
                continue
            self._in_flight += 1
            self._submitted += 1
            return True
        return False

    def completed(self, wait_s: float = 0.0) -> list[J]:
        """Jobs that left the last stage, oldest first; waits up to `wait_s` for the first one."""
        finished: list[J] = []
        try:
            finished.append(self._done.get(timeout=wait_s) if wait_s > 0 else self._done.get_nowait())
            while True:
                finished.append(self._done.get_nowait())
        except queue.Empty:
            pass
        self._in_flight -= len(finished)
        return finished

    def close(self, timeout_s: float = 30.0) -> None:
        """Let every stage finish its current job and end; jobs still queued are abandoned."""
        for slot in self._inputs:
            _drain(slot)
        for thread, slot in zip(self._threads, self._inputs, strict=True):
            if thread.is_alive():
                try:
                    slot.put(_END, timeout=timeout_s)
                except queue.Full:
                    pass
        for thread in self._threads:
            thread.join(timeout=timeout_s)

    def _run_stage(self, index: int, stage: Callable[[J], None]) -> None:
        inbox = self._inputs[index]
        outbox = self._inputs[index + 1] if index + 1 < len(self._inputs) else None
        while True:
            try:
                job = inbox.get(timeout=_QUEUE_POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if isinstance(job, _Sentinel):
                return
            try:
                stage(job)
            except Exception as error:  # noqa: BLE001 - a stage bug must cost one batch's fast path, not the thread
                log.error("stage_failed", extra={"kv": {"stage": index, "error": f"{type(error).__name__}: {error}"}})
                job.crashed = True
            self._passed[index] += 1
            if outbox is None:
                self._done.put(job)
            elif not self._put_next(outbox, job):
                return

    def _put_next(self, outbox: queue.Queue[J | _Sentinel], job: J) -> bool:
        while not self._stop.is_set():
            try:
                outbox.put(job, timeout=_QUEUE_POLL_S)
                return True
            except queue.Full:
                continue
        return False


def _drain(slot: queue.Queue[J | _Sentinel]) -> None:
    try:
        while True:
            slot.get_nowait()
    except queue.Empty:
        pass
