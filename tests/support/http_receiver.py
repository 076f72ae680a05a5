"""A real HTTP receiver for notification tests: records every POST, answers as told."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Answer = Callable[[int], tuple[int, dict[str, str]]]
"""Request number (1-based) -> (status, extra headers)."""


def always(status: int) -> Answer:
    return lambda _: (status, {})


def fail_first(failures: int, status: int = 503) -> Answer:
    return lambda n: (status, {}) if n <= failures else (200, {})


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out and left is expected here."""


@dataclass
class HttpEndpoint:
    """A real HTTP server in a thread that records every POST and answers as `answer` says."""

    answer: Answer = field(default_factory=lambda: always(200))
    delay_s: float = 0.0
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        endpoint = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    endpoint.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    number = len(endpoint.requests)
                if endpoint.delay_s:
                    time.sleep(endpoint.delay_s)
                status, headers = endpoint.answer(number)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "6")
                self.end_headers()
                self.wfile.write(b"answer")

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads `requests`."""

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/alerts"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
