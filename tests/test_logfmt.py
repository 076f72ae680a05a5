"""Structured log lines, and where they go when stderr changes under a running process."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from pipeline.logfmt import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_line_is_key_value_pairs(restored_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("INFO")
    logging.getLogger("pipeline.worker").info("batch", extra={"kv": {"consumed": 3, "error": "two words"}})
    line = stream.getvalue().strip()
    assert " level=info logger=pipeline.worker event=batch consumed=3 error=\"two words\"" in line


def test_lines_follow_the_current_stderr_after_the_old_one_is_closed(
    restored_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread that outlives a swapped and closed stderr (pytest's capture, a daemon's redirect)
    must not log into the closed file: the line goes to the stderr of the moment."""
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("INFO")
    logging.getLogger("t").info("one")
    assert "event=one" in first.getvalue()
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("t").info("two")
    assert "event=two" in second.getvalue()
    assert "Logging error" not in second.getvalue()
