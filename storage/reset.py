"""Emptying the finsent tables: `finsent demo --reset`, test isolation, benchmarks on a scratch database."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Engine

from storage.models import Base


def empty_all_tables(engine: Engine) -> None:
    """TRUNCATE every finsent table in one statement (identities restarted); the schema stays."""
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
