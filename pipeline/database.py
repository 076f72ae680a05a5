"""The configured database: FINSENT_DATABASE_URL if set, else the embedded PostgreSQL under FINSENT_DATA_DIR.

A thin adapter from the settings to `storage.connect()`, turning its failures into one-line user errors.
"""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.errors import UserError
from storage.connection import Database, DatabaseUnreachable, connect
from storage.embedded import EmbeddedPostgresError

__all__ = ["Database", "open_database", "open_migrated_database"]


def open_database(settings: Settings, *, migrate: bool = False) -> Database:
    """Connect, waiting up to FINSENT_DATABASE_CONNECT_TIMEOUT_MS for a server that is still starting."""
    try:
        return connect(settings.database_url.reveal(), data_dir=settings.data_dir,
                       timeout_s=settings.database_connect_timeout_ms / 1000, migrate=migrate)
    except EmbeddedPostgresError as error:
        raise UserError(f"{error}; or set FINSENT_DATABASE_URL to an existing PostgreSQL") from None
    except DatabaseUnreachable as error:
        raise UserError(f"{error}: check FINSENT_DATABASE_URL and that the server is running") from None


def open_migrated_database(settings: Settings) -> Database:
    """`open_database`, migrated when empty (a fresh one answers with no data, not a traceback); an
    outdated schema is one error line that names `finsent db upgrade`."""
    return open_database(settings, migrate=True)
