"""The installed all-mpnet-base-v2 for the tests that need it (`make test` runs `finsent model install` first).

Without an install such a test is skipped with the reason, except in CI (CI=true), where `make test`
installed it and its absence is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.errors import UserError
from pipeline.scoring.base_model import MPNET
from pipeline.scoring.mpnet_base import share_installed_base


def installed_mpnet() -> tuple[Path, Path]:
    """(data dir, encoder dir) of the default FINSENT_DATA_DIR's install; skips (or fails in CI) without one."""
    data_dir = Settings.load({}).data_dir
    try:
        return data_dir, MPNET.directory(data_dir)
    except UserError as missing:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(str(missing))



def share_installed_models(data_dir: Path) -> None:
    """Give a fresh data dir the base encoders installed under the default one, as a user's data dir
    has them after `make setup`: FINSENT_MODEL=auto then picks what a user's run picks."""
    share_installed_base(data_dir, Settings.load({}).data_dir)
