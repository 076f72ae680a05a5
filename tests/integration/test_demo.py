"""Issue 5's acceptance: `finsent demo` as a user runs it, on a fresh data dir and embedded defaults only.

One full demo run (about two minutes on 2 CPU cores) is shared by the acceptance assertions; a
second, interrupted run checks that Ctrl-C stops every process the demo started and loses nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from matplotlib.image import imread
from sqlalchemy import Engine

from pipeline import demo
from pipeline.cli import main
from pipeline.config import Settings
from pipeline.demo import DEMO_PICTURE, DemoOptions, sample_news_file
from pipeline.plotting import FIGURE_WIDTH_PX, HEADER_HEIGHT_PX, PANEL_HEIGHT_PX
from storage.embedded import url_of_running_server
from tests.support.broker_io import wait_until
from tests.support.finsent_cli import embedded_environment, finsent_command
from tests.support.mpnet import share_installed_models

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

DEMO_TIMEOUT_S = 600
"""Bounded liveness, not a speed claim: the issue asks for under 5 minutes on a 2-core CPU."""
INTERRUPTED_SPEEDUP = 60
"""A quarter of the default 240x: the interrupted demo is stopped long before its replay ends."""
NEGATIVE_STORY = "PFE"
POSITIVE_STORY = "NVDA"


def finsent(data_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*finsent_command(), *arguments], env=embedded_environment(data_dir), cwd=data_dir,
                          capture_output=True, text=True, timeout=180)


def sample_tickers() -> set[str]:
    tickers: set[str] = set()
    for line in sample_news_file().read_text(encoding="utf-8").splitlines():
        tickers.update(json.loads(line).get("tickers") or [])
    return tickers


@dataclass(frozen=True)
class DemoRun:
    data_dir: Path
    result: subprocess.CompletedProcess[str]
    alerts: list[dict[str, Any]]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    data_dir = tmp_path_factory.mktemp("demo")
    share_installed_models(data_dir)
    result = subprocess.run([*finsent_command(), "demo"], env=embedded_environment(data_dir), cwd=data_dir,
                            capture_output=True, text=True, timeout=DEMO_TIMEOUT_S)
    listed = finsent(data_dir, "alerts", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return DemoRun(data_dir, result, json.loads(listed.stdout))


def test_demo_exits_0_and_prints_the_summary(demo_run: DemoRun) -> None:
    assert demo_run.result.returncode == 0, demo_run.result.stderr[-3000:]
    assert re.search(r"replayed 906 messages in \d+s; 906 articles in the database", demo_run.result.stdout)
    assert re.search(rf"#\d+ {NEGATIVE_STORY}\s+negative_news .* adverse stories in ", demo_run.result.stdout)


def test_the_negative_story_raises_one_alert_with_its_evidence(demo_run: DemoRun) -> None:
    alerts = [a for a in demo_run.alerts if a["entity"] == NEGATIVE_STORY]
    assert [a["rule"] for a in alerts] == ["negative_news"], demo_run.alerts
    first = alerts[0]["evidence"]["first"]
    assert first["observed"] >= 3 and first["tail_probability"] <= first["threshold"]
    assert "15:30" <= first["bucket_start"][11:16] <= "16:00", "it fires as the story breaks (15:30)"
    assert any("Pfizer" in article["headline"] for article in first["top_negative"])


def test_no_alert_for_the_quiet_tickers_nor_the_positive_story(demo_run: DemoRun) -> None:
    alerted = {alert["entity"] for alert in demo_run.alerts}
    quiet = sample_tickers() - {NEGATIVE_STORY, POSITIVE_STORY}
    assert len(quiet) >= 10
    assert alerted & quiet == set()
    assert POSITIVE_STORY not in alerted, "every rule is about negative news"


def test_the_picture_is_a_png_with_the_alerted_ticker_first(demo_run: DemoRun) -> None:
    picture = demo_run.data_dir / DEMO_PICTURE
    match = re.search(r"^picture: (.+) \(([A-Z, ]+);", demo_run.result.stdout, flags=re.M)
    assert match is not None and Path(match.group(1)) == picture, demo_run.result.stdout[-2000:]
    entities = match.group(2).split(", ")
    assert entities[0] == NEGATIVE_STORY and "MARKET" not in entities and 1 < len(entities) <= 6
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(picture)
    assert image.shape == (HEADER_HEIGHT_PX + PANEL_HEIGHT_PX * len(entities), FIGURE_WIDTH_PX, 4)
    assert image[..., :3].std() > 0.05, "not a blank image"


def test_the_embedded_database_stays_for_later_commands_and_its_server_is_stopped(demo_run: DemoRun) -> None:
    pgdata = demo_run.data_dir / "postgres"
    assert (pgdata / "PG_VERSION").exists()
    assert not (pgdata / "postmaster.pid").exists(), "no server left running after the demo and `finsent alerts`"
    replot = finsent(demo_run.data_dir, "plot", "--entity", NEGATIVE_STORY, "--width", "1h", "--out", "again.png")
    assert replot.returncode == 0, replot.stderr
    assert (demo_run.data_dir / "again.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unwritable_picture_path_fails_before_anything_starts(tmp_path: Path) -> None:
    result = finsent(tmp_path, "demo", "--plot", str(tmp_path / "missing" / "demo.png"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"finsent: error: cannot write {tmp_path / 'missing' / 'demo.png'}: the directory {tmp_path / 'missing'} "
        "does not exist; create it or choose another --plot")
    assert not (tmp_path / "postgres").exists()


def test_no_plot_reaches_the_demo_and_excludes_plot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing only (the demo itself is the module's slow run): --no-plot is passed on, and with
    --plot PATH it is a usage error before anything starts."""
    seen: list[DemoOptions] = []
    monkeypatch.setattr(demo, "run_demo", lambda _settings, options: seen.append(options) or 0)
    root = logging.getLogger()
    level = root.level
    try:
        assert main(["demo", "--no-plot"]) == 0
    finally:
        root.setLevel(level)  # the demo quiets INFO logging; later tests' caplog wants it back
    assert seen == [DemoOptions(no_plot=True)]
    with pytest.raises(SystemExit) as refused:
        main(["demo", "--no-plot", "--plot", "demo.png"])
    assert refused.value.code == 2 and len(seen) == 1


def test_no_plot_draws_no_picture_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo._print_picture(None, Settings.load({}), None)  # type: ignore[arg-type]  # nothing is read without a picture
    assert capsys.readouterr().out == "\npicture: skipped (--no-plot); `finsent plot` draws it from the database later\n"
    assert list(tmp_path.glob("**/*.png")) == []


def test_the_picture_of_a_long_history_is_drawn_at_a_coarser_width(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `finsent demo --file months.jsonl` draws at its end: the plot's width picked from the span."""
    from tests.integration.test_plot import write_long_history

    write_long_history(engine, ["PFE", "KO"])
    picture = tmp_path / "demo.png"
    demo._print_picture(engine, Settings.load({}), picture)
    out = capsys.readouterr().out
    assert f"picture: {picture} (KO, PFE; drawn at 2h: 1,200 buckets, summed from the 1h buckets; " in out
    assert imread(picture).shape == (HEADER_HEIGHT_PX + PANEL_HEIGHT_PX * 2, FIGURE_WIDTH_PX, 4)


class OutputReader:
    """Collects a pipe's text in a thread; progress bars rewrite their line with \\r, so no readline."""

    def __init__(self, stream: Any) -> None:
        self._chunks: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for chunk in iter(lambda: stream.read1(4096), b""):
            self._chunks.append(chunk.decode("utf-8", "replace"))

    @property
    def text(self) -> str:
        return "".join(self._chunks)

    def join(self) -> None:
        self._thread.join(timeout=10)


def replay_percent(stderr: str) -> int:
    found = re.findall(r"replaying at [\d.]+x:\s+(\d+)%", stderr)
    return int(found[-1]) if found else 0


def stored_articles(pgdata: Path) -> int | None:
    """Count through the running server's socket and password without joining its handle list,
    so the demo stays the server's only user and stops it itself."""
    url = url_of_running_server(pgdata.parent)
    if url is None:
        return None
    try:
        with psycopg.connect(url, connect_timeout=5) as connection:
            return int(connection.execute("SELECT count(*) FROM articles").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        return None


COUNT_ARTICLES = """
import sqlalchemy as sa
from pipeline.config import Settings
from pipeline.database import open_database

database = open_database(Settings.load())
try:
    with database.engine.connect() as connection:
        print(connection.execute(sa.text("SELECT count(*) FROM articles")).scalar_one())
finally:
    database.close()
"""
"""Opens the data dir's embedded PostgreSQL the way every finsent command does, then stops it."""


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT back to its default in the demo process: a suite started in the background by a
    non-interactive shell (CI, `nohup ... &`) ignores SIGINT, and a child inherits that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def interrupted_demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # Its own session, like a shell job: the test sends SIGINT to the whole group, as a terminal's Ctrl-C does.
    # A slower replay (about six minutes) so that the interrupt surely lands mid-replay, however busy the machine.
    demo = subprocess.Popen([*finsent_command(), "demo", "--speedup", str(INTERRUPTED_SPEEDUP)],
                            env=embedded_environment(data_dir), cwd=data_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    try:
        yield demo, data_dir
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=30)


def test_ctrl_c_stops_every_process_and_keeps_what_was_committed(
    interrupted_demo: tuple[subprocess.Popen[bytes], Path],
) -> None:
    demo, data_dir = interrupted_demo
    pgdata = data_dir / "postgres"
    stderr = OutputReader(demo.stderr)
    stdout = OutputReader(demo.stdout)
    wait_until(lambda: replay_percent(stderr.text) >= 10 or demo.poll() is not None, 300, interval_s=0.5,
               what="the replay to get under way")
    assert demo.poll() is None, stderr.text[-3000:]
    committed = wait_until(lambda: stored_articles(pgdata), 120, interval_s=0.5, what="the worker to commit articles")
    started = running_children(demo.pid)
    postmaster = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    assert any("tansu" in name for name in started.values()), started
    assert running(postmaster)
    assert replay_percent(stderr.text) < 100, "the replay must still be running when Ctrl-C comes"

    os.killpg(demo.pid, signal.SIGINT)
    code = demo.wait(timeout=120)
    stderr.join()
    stdout.join()

    assert code == 130, stderr.text[-3000:]
    last_line = stderr.text.strip().splitlines()[-1]
    assert last_line.startswith("finsent demo: interrupted; stopped the worker, the scheduler, the broker and the database")
    assert "Traceback" not in stderr.text
    assert [pid for pid in [*started, postmaster] if running(pid)] == [], started
    assert not (pgdata / "postmaster.pid").exists()

    listed = finsent(data_dir, "alerts", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    json.loads(listed.stdout)
    counted = subprocess.run([sys.executable, "-c", COUNT_ARTICLES], env=embedded_environment(data_dir), cwd=data_dir,
                             capture_output=True, text=True, timeout=120)
    assert counted.returncode == 0, counted.stderr
    assert int(counted.stdout.strip().splitlines()[-1]) >= committed


def running_children(pid: int) -> dict[int, str]:
    """pid -> name of the process's descendants still alive (a short-lived helper may exit while they are listed)."""
    names: dict[int, str] = {}
    for child in psutil.Process(pid).children(recursive=True):
        try:
            names[child.pid] = child.name()
        except psutil.NoSuchProcess:
            continue
    return names
