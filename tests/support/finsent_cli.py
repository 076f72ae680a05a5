"""Running `finsent` as a user does: the console script of this environment, on embedded defaults."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def finsent_command() -> list[str]:
    """The console script a user runs, from this interpreter's environment (or `python -m pipeline.cli`)."""
    script = Path(sys.executable).with_name("finsent")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]


def embedded_environment(data_dir: Path) -> dict[str, str]:
    """The caller's environment without any FINSENT_* setting but the data dir: the command starts the
    embedded PostgreSQL itself and otherwise uses its defaults."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("FINSENT_")}
    return environment | {"FINSENT_DATA_DIR": str(data_dir)}
