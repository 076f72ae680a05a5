"""The configured database for the length of one command, closed however the command ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from pipeline.config import Settings
from pipeline.database import open_database, open_migrated_database


@contextmanager
def opened_database(settings: Settings, *, migrate: bool = True) -> Iterator[Engine]:
    """An engine on the database, migrated when empty (a fresh one answers with no data, not a
    traceback; an outdated one is the one-line SchemaOutdated error). `migrate=False` for the
    `db` commands, which manage the schema themselves."""
    database = open_migrated_database(settings) if migrate else open_database(settings)
    try:
        yield database.engine
    finally:
        database.close()
