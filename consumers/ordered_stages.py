"""Batches through a chain of stage threads, in order, so that slow stages overlap.

Why: the model should never wait for Kafka or PostgreSQL. With stages "score" and "write", batch
N is written while N+1 is scored and the consumer's own thread fetches and validates N+2.

Each stage runs in its own thread and holds one job at a time, or, given as `Lanes`, in several
threads (lanes) that each hold one: on a CPU two model passes side by side, each on half of the
cores, score more than one pass on all of them (small matrices do not spread over many threads).
Between stages sits a one-slot queue, so a few batches at most are in flight; a job that leaves a
lane before an older one waits for it, so jobs leave every stage in the order they entered. Jobs
come back through `completed()` to the submitting thread, which alone touches the KafkaConsumer
(it is not thread-safe) and commits their offsets in that same order.

Stage functions handle their own errors; one that raises anyway is logged, the job is marked
`crashed` and still passes through the later stages (which decide what that means for them), so
a bug costs one batch, never a thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

_QUEUE_POLL_S = 0.05
"""How often a blocked put or get looks at the stop flag."""


class Job(Protocol):
    crashed: bool


J = TypeVar("J", bound=Job)


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Lanes(Generic[J]):
    """A stage that works on up to `count` jobs at once, each in a thread of its own that calls
    `start` once before its first job (to give itself its share of the cores, say)."""

    run: Callable[[J], object]
    count: int = 1
    start: Callable[[], None] = _nothing

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a stage needs at least one lane, not {self.count}")


class _Sentinel:
    """Tells a stage thread to finish."""


_END = _Sentinel()
Slot = queue.Queue[tuple[int, J] | _Sentinel]


class _InOrder(Generic[J]):
    """A stage's exit: jobs finished by its lanes, passed on in submission order.

    A lane that finishes a job out of turn leaves it here and takes the next one; whichever lane
    holds the turn passes on every job that is due (one at a time, as a blocked put may wait)."""

    def __init__(self, put: Callable[[int, J], bool]) -> None:
        self._put = put
        self._lock = threading.Lock()
        self._passing = threading.Lock()
        self._finished: dict[int, J] = {}
        self._next = 0

    def finish(self, sequence: int, job: J) -> bool:
        """Hand a finished job over; False if a put gave up (stop was set)."""
        with self._lock:
            self._finished[sequence] = job
        while self._passing.acquire(blocking=False):
            try:
                while (due := self._take_due()) is not None:
                    if not self._put(*due):
                        return False
            finally:
                self._passing.release()
            with self._lock:  # a job may have come in after the last look and before the release
                if self._next not in self._finished:
                    return True
        return True  # another lane is passing jobs on, ours among them

    def _take_due(self) -> tuple[int, J] | None:
        with self._lock:
            job = self._finished.pop(self._next, None)
            if job is None:
                return None
            self._next += 1
            return self._next - 1, job


class OrderedStages(Generic[J]):
    def __init__(self, stages: Sequence[Callable[[J], None] | Lanes[J]], *, stop: threading.Event,
                 name: str = "stage") -> None:
        if not stages:
            raise ValueError("at least one stage is needed")
        self._stop = stop
        self._lanes = [stage if isinstance(stage, Lanes) else Lanes(stage) for stage in stages]
        self._inputs: list[Slot[J]] = [queue.Queue(maxsize=1) for _ in stages]
        self._done: queue.Queue[J] = queue.Queue()
        self._in_flight = 0
        self._submitted = 0
        self._count_lock = threading.Lock()
        self._finished = [0] * len(stages)
        """Jobs each stage has finished (counted when done, before they wait for their turn to go on)."""
        self._exits = [_InOrder(self._putter(index)) for index in range(len(stages))]
        self._threads = [
            [threading.Thread(target=self._run_lane, args=(index, lanes), name=f"{name}-{index}.{lane}", daemon=True)
             for lane in range(lanes.count)]
            for index, lanes in enumerate(self._lanes)
        ]
        """Each stage's lane threads."""
        self._lane_count = sum(lanes.count for lanes in self._lanes)
        for stage_threads in self._threads:
            for thread in stage_threads:
                thread.start()

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not yet returned by `completed()`."""
        return self._in_flight

    def lane_free(self, stage: int) -> bool:
        """True when fewer submitted jobs are yet to finish `stage` (negative counts from the end)
        than it has lanes: a job submitted now would find a lane of it free."""
        return self._submitted - self._finished[stage] < self._lanes[stage].count

    def has_room(self) -> bool:
        """True while fewer jobs are in flight than there are lanes in all: a job submitted now
        would soon have a lane of its own, rather than queue behind a slower stage."""
        return self._in_flight < self._lane_count

    def submit(self, job: J, while_waiting: Callable[[], None] = lambda: None) -> bool:
        """Hand a job to the first stage, calling `while_waiting` while its slot is taken.

        Returns False, and the job is not taken, if stop was set first."""
        while not self._stop.is_set():
            try:
                self._inputs[0].put((self._submitted, job), timeout=_QUEUE_POLL_S)
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
        """Let every lane finish its current job and end, within `timeout_s` in all; jobs still
        queued are abandoned. A lane ends on an _END or, once stop is set, on its own; so an _END
        is offered only while there is room, and one lane may take another's."""
        deadline = time.monotonic() + timeout_s
        for slot in self._inputs:
            _drain(slot)
        for slot, stage_threads in zip(self._inputs, self._threads, strict=True):
            for thread in stage_threads:
                while thread.is_alive() and time.monotonic() < deadline:
                    with contextlib.suppress(queue.Full):
                        slot.put_nowait(_END)
                    thread.join(timeout=_QUEUE_POLL_S)

    def _run_lane(self, index: int, lanes: Lanes[J]) -> None:
        try:
            lanes.start()
        except Exception as error:  # noqa: BLE001 - the lane still works, on the process's defaults
            log.error("stage_start_failed", extra={"kv": {"stage": index, "error": f"{type(error).__name__}: {error}"}})
        inbox = self._inputs[index]
        while True:
            try:
                item = inbox.get(timeout=_QUEUE_POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if isinstance(item, _Sentinel):
                return
            sequence, job = item
            try:
                lanes.run(job)
            except Exception as error:  # noqa: BLE001 - a stage bug must cost one batch's fast path, not the thread
                log.error("stage_failed", extra={"kv": {"stage": index, "error": f"{type(error).__name__}: {error}"}})
                job.crashed = True
            with self._count_lock:
                self._finished[index] += 1
            if not self._exits[index].finish(sequence, job):
                return

    def _putter(self, index: int) -> Callable[[int, J], bool]:
        """How stage `index` passes a job on: into the next stage's slot, or out of the last one."""
        if index + 1 == len(self._inputs):
            def leave(sequence: int, job: J) -> bool:
                self._done.put(job)  # unbounded: the submitting thread takes them as it commits
                return True

            return leave
        outbox = self._inputs[index + 1]

        def put(sequence: int, job: J) -> bool:
            while not self._stop.is_set():
                try:
                    outbox.put((sequence, job), timeout=_QUEUE_POLL_S)
                    return True
                except queue.Full:
                    continue
            return False

        return put


def _drain(slot: Slot[J]) -> None:
    try:
        while True:
            slot.get_nowait()
    except queue.Empty:
        pass
