"""bench/alerts_real.py on a small synthetic tagged CSV: the rows it makes, a whole run through the
real broker, worker, model and PostgreSQL, the reuse of a kept database, and SIGTERM."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import datetime, time, timezone
from pathlib import Path
from types import ModuleType

import psutil
import pytest

from tests.integration.test_sigterm_cleanup import (
    PROGRESS_TIMEOUT_S,
    alive,
    freeze_when,
    launched,  # noqa: F401 - the fixture
    postgres_processes_of,
    terminate_frozen,
)
from tests.support.broker_io import wait_until

REPOSITORY = Path(__file__).resolve().parents[2]
BENCH = REPOSITORY / "bench" / "alerts_real.py"
RUN_TIMEOUT_S = 600


def bench_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPOSITORY / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


tagged_news = bench_module("tagged_news")


def write_csv(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    lines = ["published_at,ticker,headline,source", *(",".join(f'"{cell}"' for cell in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_date_only_row_gets_a_time_of_day_from_its_headline_and_each_ticker_its_own_article(tmp_path: Path) -> None:
    news = tagged_news.read_tagged_news(write_csv(tmp_path / "news.csv", [
        ("2025-03-20", "ACME", "Acme and Bolt end their supply deal", "wire.example"),
        ("2025-03-20", "bolt", "Acme and Bolt end their supply deal", "wire.example"),
        ("2025-03-20", "ACME", "Acme and Bolt end their supply deal", "wire.example"),       # the same row again
        ("2025-03-20T14:02:00Z", "ACME", "Acme opens a plant", ""),
        ("2025-03-20T14:02:00", "ACME", "A time without a zone", "wire.example"),
        ("2025-03-21", "ACME", "", "wire.example"),
    ]))
    assert (news.rows, news.duplicates, news.skipped) == (6, 1, 2)
    assert [example.split(":")[0] for example in news.skipped_examples] == ["line 6", "line 7"]
    deal = [message for message in news.messages if b"supply deal" in message.value]
    assert sorted(message.ticker for message in deal) == ["ACME", "BOLT"]
    assert len({message.id for message in deal}) == 2, "one article per (headline, ticker)"
    assert deal[0].published_at == deal[1].published_at, "the time comes from the headline alone"
    assert time(8) <= deal[0].published_at.time() < time(20) and deal[0].published_at.date().isoformat() == "2025-03-20"
    again = tagged_news.read_tagged_news(tmp_path / "news.csv")
    assert [m.id for m in again.messages] == [m.id for m in news.messages], "deterministic"
    timed = next(message for message in news.messages if b"plant" in message.value)
    assert timed.published_at == datetime(2025, 3, 20, 14, 2, tzinfo=timezone.utc)
    document = json.loads(timed.value)
    assert document["tickers"] == ["ACME"] and "source" not in document and document["published_at"] == "2025-03-20T14:02:00Z"
    assert json.loads(deal[0].value)["source"] == "wire.example"
    assert [m.published_at for m in news.messages] == sorted(m.published_at for m in news.messages), "oldest first"


def test_a_file_without_the_columns_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "news.csv"
    path.write_text("date,ticker,headline\n2025-03-20,ACME,x\n", encoding="utf-8")
    with pytest.raises(tagged_news.TaggedNewsError, match="no column published_at, source; the header must name"):
        tagged_news.read_tagged_news(path)


def synthetic_news(directory: Path) -> tuple[Path, Path]:
    """Four invented tickers over three weeks of neutral date-only headlines, and a story of six
    adverse headlines about one of them on one afternoon."""
    rows = []
    for day in range(1, 22):
        for number, ticker in enumerate(("ACME", "BOLT", "CRUX", "DYNA")):
            if (day + number) % 2 == 0:
                rows.append((f"2025-03-{day:02d}", ticker, f"{ticker.title()} opens a new office, number {day}", "wire.example"))
    story = ("Acme chief executive arrested on fraud charges", "Acme files for bankruptcy protection",
             "Acme shares collapse after accounting fraud probe", "Regulators raid Acme offices over fraud",
             "Acme lenders pull credit lines as crisis deepens", "Acme suspends trading after auditor resigns")
    rows += [(f"2025-03-18T{10 + hour:02d}:15:00Z", "ACME", headline, "wire.example") for hour, headline in enumerate(story)]
    events = directory / "events.csv"
    events.write_text("ticker,event_date,what\nACME,2025-03-18,invented collapse\nCRUX,2025-03-10,invented, never in the news\n",
                      encoding="utf-8")
    return write_csv(directory / "news.csv", rows), events


def bench_environment(tmp_path: Path) -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("FINSENT_")}
    return environment | {"TMPDIR": str(tmp_path)}


def run_bench(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH), *arguments], env=bench_environment(tmp_path), cwd=REPOSITORY,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


@pytest.mark.integration
@pytest.mark.timeout(2 * RUN_TIMEOUT_S)
def test_a_run_replays_backtests_and_scores_and_a_kept_database_skips_the_replay(tmp_path: Path) -> None:
    news, events = synthetic_news(tmp_path)
    keep = tmp_path / "kept"
    first = run_bench(tmp_path, "--news", str(news), "--events", str(events), "--keep", str(keep), "--thresholds", "1,3")
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    rows = len(news.read_text(encoding="utf-8").splitlines()) - 1
    assert f"replay: {rows} messages through broker -> worker -> PostgreSQL" in out
    assert "4 tickers" in out and "known events" in out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert any(line.startswith("CRUX 2025-03-10 no - -") for line in lines)
    assert any(line.startswith("ACME 2025-03-18 ") for line in lines)
    assert any(line.startswith("recall: ") and " of 2 events" in line for line in lines)
    assert any(line.startswith("unlisted alerts: ") and "ticker-months (4 tickers with news)" in line for line in lines)
    assert any(line.startswith("market alerts (MARKET): ") for line in lines)
    assert any(line.startswith("unlisted alerts (") for line in lines)
    assert "recall/noise curve" in out or "no recall/noise curve" in out

    second = run_bench(tmp_path, "--news", str(news), "--events", str(events), "--keep", str(keep), "--thresholds", "1")
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"replay: every article already stored in {keep} (--keep): skipped" in second.stdout
    assert "producing" not in second.stderr
    scored = [line for line in out.splitlines() if line.startswith("known events")]
    assert scored == [line for line in second.stdout.splitlines() if line.startswith("known events")]
    assert list(tmp_path.glob("finsent-alerts-real-*")) == []


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    news, _ = synthetic_news(tmp_path)
    result = run_bench(tmp_path, "--news", str(news), "--events", str(tmp_path / "missing.csv"))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"bench/alerts_real.py: error: --events {tmp_path / 'missing.csv'}: not found; "
                                     "give a CSV file with the columns ticker,event_date")


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_sigterm_stops_the_broker_the_worker_and_postgres(tmp_path: Path, launched: list[subprocess.Popen[bytes]]) -> None:  # noqa: F811
    news, events = synthetic_news(tmp_path)
    bench = subprocess.Popen([sys.executable, str(BENCH), "--news", str(news), "--events", str(events)],
                             env=bench_environment(tmp_path), cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    launched.append(bench)

    def servers_up() -> bool:
        children = psutil.Process(bench.pid).children()
        return any(child.name().startswith("tansu") for child in children) and any(
            tmp_path.glob("finsent-alerts-real-*/postgres/postmaster.pid"))

    assert freeze_when(bench, servers_up), bench.communicate()[1].decode()[-3000:]
    started = [child.pid for child in psutil.Process(bench.pid).children(recursive=True)]
    started += postgres_processes_of(next(tmp_path.glob("finsent-alerts-real-*/postgres")))

    code, stderr = terminate_frozen(bench)

    assert code == 143, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "bench/alerts_real.py: terminated", stderr[-3000:]
    wait_until(lambda: not any(alive(pid) for pid in started), PROGRESS_TIMEOUT_S, what="the broker and the database to be gone")
    assert list(tmp_path.glob("finsent-alerts-real-*")) == [], "its scratch dir is removed"
