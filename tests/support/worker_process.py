"""finsent as users run it: `finsent worker` or `finsent scheduler` in a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class WorkerProcess:
    def __init__(self, environment: dict[str, str], log_path: Path, command: str = "worker",
                 arguments: tuple[str, ...] = ()) -> None:
        self._environment = {**os.environ, **environment}
        self._command = command
        self._arguments = arguments
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", self._command, *self._arguments],
            env=self._environment, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def send(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout_s: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait()
