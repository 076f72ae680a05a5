"""Opening a finsent database: a PostgreSQL URL, or the embedded PostgreSQL under a data dir.

`connect()` is the door for code and notebooks (`storage.connect()`); the CLI, worker and
scheduler reach it through pipeline/database.py, which reads the settings.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import platformdirs
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from storage.embedded import EmbeddedPostgres
from storage.engine import make_engine, redacted
from storage.locks import check_alive

log = logging.getLogger(__name__)


class DatabaseUnreachable(Exception):
    """No PostgreSQL answered at the URL within the timeout; the message names the URL without its password."""


@dataclass
class Database:
    """An engine on the database, and the embedded server it runs on (None for a URL): close() stops both."""

    engine: Engine
    url: str
    embedded: EmbeddedPostgres | None

    def close(self) -> None:
        self.engine.dispose()
        if self.embedded is not None:
            self.embedded.stop()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()


def default_data_dir() -> Path:
    """Where the embedded PostgreSQL keeps its data unless told otherwise (the user data dir)."""
    return Path(platformdirs.user_data_dir("finsent"))


def connect(url: str = "", *, data_dir: Path | None = None, timeout_s: float = 30.0, migrate: bool = False) -> Database:
    """Connect to `url`, or with no URL start (or join) the embedded PostgreSQL under `data_dir`,
    waiting up to `timeout_s` for a server that is still starting. `migrate`: bring an empty
    database to the current schema (an outdated one raises storage.migrate.SchemaOutdated).

        with storage.connect() as database:
            frame = storage.entity_summary(database.engine, start, end)

    Raises DatabaseUnreachable, or EmbeddedPostgresError when the embedded server cannot start.
    """
    embedded: EmbeddedPostgres | None = None
    if not url:
        embedded = EmbeddedPostgres(data_dir or default_data_dir())
        url = embedded.start()
    database = Database(make_engine(url), url, embedded)
    try:
        _wait_until_reachable(database.engine, url, timeout_s)
        if migrate:
            from storage.migrate import ensure_schema

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
                check_alive(connection)
            return
        except OperationalError as error:
            reason = " ".join(str(error.orig).split())[:300]
            if time.monotonic() + delay > deadline:
                raise DatabaseUnreachable(f"cannot connect to PostgreSQL at {redacted(url)} ({reason})") from None
            log.warning("database_unreachable", extra={"kv": {"url": redacted(url), "retry_in_s": delay, "error": reason}})
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
