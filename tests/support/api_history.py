"""The API tests' database and tokens: steady news for three entities over 130 five-minute buckets,
a burst of adverse PFE headlines in bucket 100 (the worker's own storage code writes them), and the
alert the live detection stores over that history (`finsent backtest --write`)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from pipeline.cli import main
from tests.support.alert_history import bucket, write_history

READ_TOKEN = "read-token-0123456789abcdef"
WRITE_TOKEN = "write-token-fedcba9876543210"
TOKENS = f"read:{READ_TOKEN},write:{WRITE_TOKEN}"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
ENTITIES = ["PFE", "AAPL", "XOM"]
BUCKETS = 130
BURST_BUCKET = 100


def seed(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The history and its alert; FINSENT_DATABASE_URL then names the test database for the CLI."""
    monkeypatch.setenv("FINSENT_DATABASE_URL", database_url)
    write_history(engine, ENTITIES, BUCKETS, burst_entity="PFE", burst_at=BURST_BUCKET)
    assert main(["backtest", "--from", bucket(48).isoformat(), "--to", bucket(BUCKETS).isoformat(), "--write"]) == 0
