"""SIGTERM stops a command as Ctrl-C does: the embedded PostgreSQL and broker it started do not outlive it.

The signal is sent at the moment the server's postmaster.pid appears, the hardest moment (the
server is starting, or the command has just begun using it): the command is frozen with SIGSTOP
there, sent SIGTERM, and let go. Waits are generous and progress-based, never speed claims.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.broker_io import wait_until
from tests.support.finsent_cli import embedded_environment, finsent_command

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPOSITORY = Path(__file__).resolve().parents[2]
PROGRESS_TIMEOUT_S = 120.0
ATTEMPTS = 3
"""A fast machine may finish the command before it is frozen: then it runs again on a fresh data dir."""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def postgres_processes_of(pgdata: Path) -> list[int]:
    """Server processes working in this cluster (it runs with pgdata as its working directory)."""
    found = []
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] == "postgres" and Path(process.cwd()) == pgdata:
                found.append(process.pid)
        except (psutil.Error, OSError):
            continue
    return found


def freeze_when(process: subprocess.Popen[bytes], ready: Callable[[], bool]) -> bool:
    """SIGSTOP the process as soon as `ready()` holds; False when it exited first."""
    def reached() -> bool:
        return process.poll() is not None or ready()

    # Polled fast: the command must be frozen while it starts the server, not after.
    wait_until(reached, PROGRESS_TIMEOUT_S, interval_s=0.01, what="the command to start the embedded PostgreSQL")
    os.kill(process.pid, signal.SIGSTOP)
    return process.poll() is None


def terminate_frozen(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    os.kill(process.pid, signal.SIGTERM)
    os.kill(process.pid, signal.SIGCONT)
    _, stderr = process.communicate(timeout=PROGRESS_TIMEOUT_S)
    return process.returncode, stderr.decode("utf-8", "replace")


@pytest.fixture
def launched() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts, killed at its end if still there (a failed test leaves nothing running)."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
            process.wait(timeout=30)


@pytest.mark.parametrize("arguments", [["plot", "--out", "plot.png"], ["scores", "--entity", "AAPL"]], ids=["plot", "scores"])
def test_sigterm_stops_the_embedded_postgres_a_command_started(
    tmp_path: Path, arguments: list[str], launched: list[subprocess.Popen[bytes]],
) -> None:
    for attempt in range(ATTEMPTS):
        pgdata = tmp_path / f"data-{attempt}" / "postgres"
        command = subprocess.Popen([*finsent_command(), *arguments], env=embedded_environment(pgdata.parent),
                                   cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        launched.append(command)
        if freeze_when(command, (pgdata / "postmaster.pid").exists):
            break
        command.communicate(timeout=PROGRESS_TIMEOUT_S)
    else:
        pytest.skip(f"the command finished before it could be frozen, {ATTEMPTS} times")
    started = postgres_processes_of(pgdata)

    code, stderr = terminate_frozen(command)

    assert code in (130, 143), stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "finsent: terminated", stderr[-3000:]
    assert "Traceback" not in stderr
    wait_until(lambda: not any(alive(pid) for pid in started) and not postgres_processes_of(pgdata),
               PROGRESS_TIMEOUT_S, what="the server's processes to be gone")
    assert not (pgdata / "postmaster.pid").exists()


def test_sigterm_stops_the_broker_and_postgres_of_the_ingest_benchmark(
    tmp_path: Path, launched: list[subprocess.Popen[bytes]],
) -> None:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("FINSENT_")}
    environment |= {"TMPDIR": str(tmp_path)}  # its scratch dir, hence its cluster, lands here
    bench = subprocess.Popen([sys.executable, str(REPOSITORY / "bench" / "ingest.py"), "--messages", "200"],
                             env=environment, cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    launched.append(bench)

    def servers_up() -> bool:
        children = psutil.Process(bench.pid).children()
        return any(child.name().startswith("tansu") for child in children) and any(
            tmp_path.glob("finsent-bench-*/postgres/postmaster.pid"))

    assert freeze_when(bench, servers_up), bench.communicate()[1].decode()[-3000:]
    started = [child.pid for child in psutil.Process(bench.pid).children(recursive=True)]
    started += postgres_processes_of(next(tmp_path.glob("finsent-bench-*/postgres")))

    code, stderr = terminate_frozen(bench)

    assert code == 143, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "bench/ingest.py: terminated", stderr[-3000:]
    wait_until(lambda: not any(alive(pid) for pid in started), PROGRESS_TIMEOUT_S, what="the broker and the database to be gone")
    assert list(tmp_path.glob("finsent-bench-*")) == [], "its scratch dir is removed"


BROKER_THEN_SLEEP = """
import time
from consumers.embedded_broker import EmbeddedBroker
broker = EmbeddedBroker()
broker.start()
print(broker._process.pid, flush=True)
time.sleep(600)
"""


def test_the_embedded_broker_dies_with_its_parent_even_on_sigkill() -> None:
    parent = subprocess.Popen([sys.executable, "-c", BROKER_THEN_SLEEP], cwd=REPOSITORY, stdout=subprocess.PIPE,
                              text=True)
    try:
        broker = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert alive(broker)
    finally:
        parent.kill()
        parent.wait(timeout=30)
    wait_until(lambda: not alive(broker), PROGRESS_TIMEOUT_S, what="the broker to die with its parent")
