"""Alembic environment: runs on the connection handed over by storage.migrate (or a URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from storage.models import Base

config = context.config
connection = config.attributes.get("connection")


def _run(connection_to_use: Connection) -> None:
    context.configure(connection=connection_to_use, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic: no connection handed over by storage.migrate and no sqlalchemy.url set")
    with create_engine(url).connect() as fresh_connection:
        _run(fresh_connection)
