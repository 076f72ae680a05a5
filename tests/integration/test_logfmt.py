"""Structured log lines, and where they go when stderr changes under a running process."""

from __future__ import annotations

import io
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from pipeline.logfmt import configure_logging
from tests.support.broker_io import wait_until
from tests.support.worker_process import WorkerProcess


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


HOSTILE = "Bank\x1b[2J\x1b]0;owned\x07 fails\r\nts=forged level=info\u2028next\u202egnp.exe\u2066x\u2069 \x00\x85\x9b"


def test_event_and_values_cannot_forge_lines_or_drive_the_terminal(
    restored_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("INFO")
    logging.getLogger("pipeline.worker").warning(HOSTILE, extra={"kv": {"id": HOSTILE, "headline": "plain", "path": "a\\b"}})
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n"), "one record, one line"
    line = text[:-1]
    assert all(ch.isprintable() for ch in line), [ch for ch in line if not ch.isprintable()]
    escaped = ('"Bank\\x1b[2J\\x1b]0;owned\\x07 fails\\r\\nts=forged level=info\\u2028next\\u202egnp.exe\\u2066x\\u2069 '
               '\\x00\\x85\\x9b"')
    assert f" event={escaped} id={escaped} headline=plain " in line
    assert line.endswith(' path=a\\b'), "a lone backslash needs no quotes"


def test_a_quoted_value_escapes_backslashes_and_quotes(restored_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("INFO")
    logging.getLogger("t").info("e", extra={"kv": {"v": 'say "hi"\\x1b\ttab'}})
    assert stream.getvalue().strip().endswith(' v="say \\"hi\\"\\\\x1b\\ttab"'), stream.getvalue()


@pytest.mark.parametrize(("level", "apscheduler"), [("INFO", logging.WARNING), ("WARNING", logging.WARNING), ("DEBUG", logging.DEBUG)])
def test_apscheduler_is_quiet_unless_debugging(restored_logging: None, level: str, apscheduler: int) -> None:
    configure_logging(level)
    assert logging.getLogger("apscheduler.executors.default").getEffectiveLevel() == apscheduler


@pytest.mark.integration
def test_a_scheduler_at_info_logs_its_passes_and_no_apscheduler_lines(engine: Engine, database_url: str, tmp_path: Path) -> None:
    """APScheduler logs two INFO lines per job run; the delivery job runs every 2 s. At INFO only
    finsent's own lines (one per pass) may appear."""
    environment = {"FINSENT_DATABASE_URL": database_url, "FINSENT_ALERT_INTERVAL": "1s", "FINSENT_ALERT_KAFKA": "false",
                   "FINSENT_LOG_LEVEL": "INFO"}
    scheduler = WorkerProcess(environment, tmp_path / "scheduler.log", command="scheduler").start()
    try:
        wait_until(lambda: scheduler.log_text().count("event=detection_pass") >= 3, timeout_s=60,
                   what=f"three detection passes; log:\n{scheduler.log_text()[-2000:]}")
        scheduler.send(signal.SIGTERM)
        assert scheduler.wait(30) == 0
    finally:
        scheduler.kill()
    lines = [line for line in scheduler.log_text().splitlines() if line.strip()]
    assert not [line for line in lines if "apscheduler" in line.lower()], lines
    assert all(line.startswith("ts=") for line in lines), lines
