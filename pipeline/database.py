"""Opening the configured database: the URL if one is set, else the embedded PostgreSQL under data_dir."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from pipeline.config import Settings
from pipeline.errors import UserError
from storage.embedded import EmbeddedPostgres, EmbeddedPostgresError
from storage.engine import make_engine, redacted

log = logging.getLogger(__name__)


@dataclass
class Database:
    engine: Engine
    url: str
    embedded: EmbeddedPostgres | None

    def close(self) -> None:
        self.engine.dispose()
        if self.embedded is not None:
            self.embedded.stop()


def open_database(settings: Settings) -> Database:
    """Connect, waiting up to FINSENT_DATABASE_CONNECT_TIMEOUT_MS for a server that is still starting."""
    embedded: EmbeddedPostgres | None = None
    url = settings.database_url.reveal()
    if not url:
        embedded = EmbeddedPostgres(settings.data_dir)
        try:
            url = embedded.start()
        except EmbeddedPostgresError as error:
            raise UserError(f"{error}; or set FINSENT_DATABASE_URL to an existing PostgreSQL") from None
    engine = make_engine(url)
    _wait_until_reachable(engine, url, settings.database_connect_timeout_ms / 1000)
    return Database(engine, url, embedded)


def open_migrated_database(settings: Settings) -> Database:
    """`open_database`, migrated when empty (a fresh one answers with no data, not a traceback); an
    outdated schema is one error line that names `finsent db upgrade`."""
    from storage.migrate import ensure_schema

    database = open_database(settings)
    try:
        ensure_schema(database.engine)
    except BaseException:
        database.close()
        raise
    return database


def _wait_until_reachable(engine: Engine, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            return
        except OperationalError as error:
            reason = " ".join(str(error.orig).split())[:300]
            if time.monotonic() + delay > deadline:
                engine.dispose()
                raise UserError(
                    f"cannot connect to PostgreSQL at {redacted(url)} ({reason}): "
                    "check FINSENT_DATABASE_URL and that the server is running"
                ) from None
            log.warning("database_unreachable", extra={"kv": {"url": redacted(url), "retry_in_s": delay, "error": reason}})
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
