"""Stopping a command on SIGTERM as on Ctrl-C, so the embedded servers it started are stopped.

`kill`, `timeout` and service managers send SIGTERM; Python's default ends the process at once,
skipping every `finally`, and a command that started the embedded PostgreSQL or broker would leave
them running. Inside `terminate_as_interrupt` SIGTERM raises `Terminated` (a KeyboardInterrupt) in
the main thread instead. The worker and the scheduler install their own handlers inside it
(`stop_on_signals`) to finish their batch first.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt: every `finally` and close path runs."""


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (`kill`, `timeout`, a service manager) stops a command as Ctrl-C does, so the embedded servers it
    started are stopped; a second SIGTERM is ignored until exit, so as not to cut that short (every stop is
    bounded). The worker and the scheduler install their own handlers (`stop_on_signals`) inside, to finish their
    batch first."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handle(_signum: int, _frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise Terminated

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        if not fired:
            signal.signal(signal.SIGTERM, previous)


def interrupted_exit(interruption: KeyboardInterrupt) -> tuple[int, str]:
    """Exit status and word for Ctrl-C (130) or SIGTERM (143)."""
    return (EXIT_TERMINATED, "terminated") if isinstance(interruption, Terminated) else (EXIT_INTERRUPTED, "interrupted")


def run_interruptible(function: Callable[[], int | None], name: str) -> int:
    """A script's main (the bench scripts) with SIGTERM handled as Ctrl-C; 130/143 and one line `NAME: interrupted`."""
    try:
        with terminate_as_interrupt():
            return int(function() or 0)
    except KeyboardInterrupt as interruption:
        code, word = interrupted_exit(interruption)
        print(f"{name}: {word}", file=sys.stderr)
        return code


@contextmanager
def interrupts_ignored() -> Iterator[None]:
    """A second Ctrl-C or SIGTERM must not cut a shutdown short and leave a server running; every stop is bounded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM/SIGINT ask the loop to stop after the current step (a worker does not commit an unfinished
    batch; `finsent worker --processes N` passes the signal on to its children)."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("stop_requested", extra={"kv": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
