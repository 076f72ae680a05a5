"""Replaying news files: reading JSONL/CSV/gz, skipping bad lines, the send schedule, and `finsent produce`."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from kafka import KafkaProducer

import consumers.replay as replay_module
from consumers.kafka_clients import KafkaOptions, create_producer
from consumers.replay import ReplayFileError, ReplayLine, count_records, read_news_file, replay
from consumers.schema import RejectedMessage
from tests.conftest import Topics
from tests.support.broker_io import read_topic

MAX_BYTES = 65_536
T0 = datetime(2024, 5, 1, 13, 30, tzinfo=timezone.utc)


def article(index: int, at: datetime = T0, **extra: object) -> str:
    return json.dumps({"id": f"a-{index}", "published_at": at.isoformat(), "headline": f"Headline {index}", **extra})


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def entries(path: Path) -> list[ReplayLine | tuple[int, RejectedMessage]]:
    return list(read_news_file(path, MAX_BYTES))


# --- reading files (no broker) ---


def test_jsonl_skips_blank_lines_and_reports_bad_ones_with_line_numbers(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "news.jsonl", [article(1), "", "   ", "{not json", article(2) + "\r", '{"headline": "no time"}'])
    result = entries(path)
    good = [entry for entry in result if isinstance(entry, ReplayLine)]
    bad = [entry for entry in result if isinstance(entry, tuple)]
    assert [(line.line_number, line.item.id, line.value) for line in good] == [
        (1, "a-1", article(1).encode()),
        (5, "a-2", article(2).encode()),
    ]
    assert [(number, rejection.kind) for number, rejection in bad] == [(4, "not_json"), (6, "missing_field")]
    assert "published_at" in bad[1][1].reason
    assert count_records(path) == 4


def test_csv_with_pipe_separated_tickers(tmp_path: Path) -> None:
    path = tmp_path / "news.csv"
    path.write_text(
        "id,published_at,headline,body,tickers\n"
        "c-1,2024-05-01T13:30:00Z,Apple up,,AAPL|$msft\n"
        'c-2,2024-05-01T13:31:00Z,"Quoted, with comma",Body,\n'
        "c-3,,No time,,\n",
        encoding="utf-8",
    )
    result = entries(path)
    assert isinstance(result[0], ReplayLine) and isinstance(result[1], ReplayLine)
    assert (result[0].line_number, result[0].item.id, result[0].item.tickers) == (2, "c-1", ("AAPL", "MSFT"))
    assert (result[1].item.headline, result[1].item.body, result[1].item.tickers) == ("Quoted, with comma", "Body", None)
    assert json.loads(result[0].value)["tickers"] == ["AAPL", "$msft"]
    assert isinstance(result[2], tuple) and result[2][0] == 4 and "published_at" in result[2][1].reason
    assert count_records(path) == 3


def test_csv_without_published_at_column_rejected(tmp_path: Path) -> None:
    path = tmp_path / "news.csv"
    path.write_text("id,headline\n1,x\n", encoding="utf-8")
    with pytest.raises(ReplayFileError, match="published_at") as raised:
        entries(path)
    assert str(path) in str(raised.value)


def test_gzipped_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "news.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(article(1) + "\n\n" + article(2) + "\n")
    assert [entry.item.id for entry in entries(path) if isinstance(entry, ReplayLine)] == ["a-1", "a-2"]
    assert count_records(path) == 2


def make_unknown_extension(tmp_path: Path) -> Path:
    path = tmp_path / "news.txt"
    path.write_text(article(1) + "\n", encoding="utf-8")
    return path


def make_directory(tmp_path: Path) -> Path:
    path = tmp_path / "folder.jsonl"
    path.mkdir()
    return path


def make_latin1(tmp_path: Path) -> Path:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(article(1).encode() + b"\n" + '{"headline": "Société Générale"}\n'.encode("latin-1"))
    return path


def make_bad_gzip(tmp_path: Path) -> Path:
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(b"this is not gzip")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (make_unknown_extension, "unknown file type"),
        (lambda tmp_path: tmp_path / "missing.jsonl", "not found"),
        (make_directory, "directory"),
        (make_latin1, "UTF-8"),
        (make_bad_gzip, "cannot be read"),
    ],
    ids=["unknown-extension", "missing", "directory", "not-utf8", "bad-gzip"],
)
def test_unreadable_files_raise_with_the_path(tmp_path: Path, make: object, message: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    for read in (entries, count_records):
        with pytest.raises(ReplayFileError, match=message) as raised:
            read(path)
        assert str(path) in str(raised.value)


# --- the send schedule and delivery (real broker) ---


class FakeClock:
    """Stands in for consumers.replay.time: sleeping advances it by the request plus a fixed oversleep."""

    def __init__(self, oversleep_s: float = 0.0) -> None:
        self.now = 0.0
        self.oversleep_s = oversleep_s
        self.requested: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        self.now += seconds + self.oversleep_s


def use_clock(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    monkeypatch.setattr(replay_module, "time", SimpleNamespace(monotonic=clock.monotonic))


@pytest.fixture(scope="module")
def producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    producer = create_producer(KafkaOptions(kafka_bootstrap, client_id="finsent-test-replay"))
    yield producer
    producer.close(timeout=10)


@pytest.mark.integration
def test_replay_sends_every_valid_line_once_keyed_by_id_with_speedup_schedule(
    tmp_path: Path, kafka_bootstrap: str, topics: Topics, producer: KafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [article(i, T0 + timedelta(seconds=60 * i)) for i in range(4)]
    lines.insert(2, '{"published_at": "2024-05-01T13:31:30Z"}')
    path = write_jsonl(tmp_path / "news.jsonl", lines)
    clock = FakeClock()
    use_clock(monkeypatch, clock)
    progress: list[int] = []

    summary = replay(path, producer, topics.news, speedup=60, max_message_bytes=MAX_BYTES, progress=progress.append, sleep=clock.sleep)

    assert (summary.sent, summary.skipped) == (4, 1)
    assert summary.skipped_examples == ["line 3: headline and body are both missing or empty; at least one must have text"]
    assert sum(progress) == 5
    assert clock.requested == pytest.approx([1.0, 1.0, 1.0])
    records = read_topic(kafka_bootstrap, topics.news, expected=4, idle_s=1.0)
    assert sorted((record.key, record.value) for record in records) == sorted(
        (f"a-{i}".encode(), article(i, T0 + timedelta(seconds=60 * i)).encode()) for i in range(4)
    )


@pytest.mark.integration
def test_speedup_schedule_is_absolute_so_oversleeping_does_not_drift(
    tmp_path: Path, topics: Topics, producer: KafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_jsonl(tmp_path / "news.jsonl", [article(i, T0 + timedelta(seconds=60 * i)) for i in range(4)])
    clock = FakeClock(oversleep_s=0.25)
    use_clock(monkeypatch, clock)
    replay(path, producer, topics.news, speedup=60, sleep=clock.sleep)
    assert clock.requested == pytest.approx([1.0, 0.75, 0.75])


@pytest.mark.integration
def test_rate_limit_and_speedup_take_the_slower_schedule(
    tmp_path: Path, topics: Topics, producer: KafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    same_time = [article(i) for i in range(3)]
    late = article(3, T0 + timedelta(seconds=600))
    path = write_jsonl(tmp_path / "news.jsonl", [*same_time, late])
    clock = FakeClock()
    use_clock(monkeypatch, clock)
    replay(path, producer, topics.news, rate_per_s=4, speedup=60, sleep=clock.sleep)
    assert clock.requested == pytest.approx([0.25, 0.25, 9.5])


@pytest.mark.integration
def test_replay_without_schedule_never_sleeps(tmp_path: Path, topics: Topics, producer: KafkaProducer) -> None:
    path = write_jsonl(tmp_path / "news.jsonl", [article(i, T0 + timedelta(hours=i)) for i in range(3)])
    requested: list[float] = []
    assert replay(path, producer, topics.news, sleep=requested.append).sent == 3
    assert requested == []


# --- `finsent produce` as a subprocess ---


def run_cli(*arguments: str, cwd: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *arguments],
        env={**os.environ, **environment},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.integration
def test_finsent_produce_end_to_end(tmp_path: Path, kafka_bootstrap: str, topics: Topics) -> None:
    path = write_jsonl(tmp_path / "news.jsonl", [article(1), "not json", article(2), article(3)])
    result = run_cli("produce", str(path), cwd=tmp_path, FINSENT_KAFKA_BOOTSTRAP=kafka_bootstrap, FINSENT_TOPIC_NEWS=topics.news)
    assert result.returncode == 0, result.stderr
    assert "sent 3 messages" in result.stdout
    assert "skipped 1 invalid" in result.stdout
    assert "line 2:" in result.stderr and "Traceback" not in result.stderr
    records = read_topic(kafka_bootstrap, topics.news, expected=3, idle_s=1.0)
    assert sorted(record.key for record in records) == [b"a-1", b"a-2", b"a-3"]


def test_finsent_produce_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("produce", "missing.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    stderr_lines = result.stderr.strip().splitlines()
    assert len(stderr_lines) == 1, result.stderr
    assert stderr_lines[0].startswith("finsent: error:")
    assert "missing.jsonl" in stderr_lines[0] and "not found" in stderr_lines[0]
