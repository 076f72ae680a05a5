"""Alembic migrations, run from code: `finsent db upgrade`, and automatically on an empty database."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from storage.locks import lock_migrations

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaOutdated(Exception):
    """The database holds an older schema than this finsent; `finsent db upgrade` fixes it."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Upgrade under an advisory lock so concurrent workers never migrate twice. Returns the new revision."""
    config = alembic_config()
    with engine.begin() as connection:
        lock_migrations(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        new_revision = MigrationContext.configure(connection).get_current_revision()
    log.info("database_migrated", extra={"kv": {"revision": new_revision}})
    return new_revision


def ensure_schema(engine: Engine) -> None:
    """Migrate an empty database; refuse to run on an outdated one (a user decides when to migrate)."""
    revision = current_revision(engine)
    if revision is None:
        upgrade(engine)
        return
    known = {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if revision not in known:
        raise SchemaOutdated(
            f"database schema is at revision {revision}, which this finsent does not know: upgrade finsent"
        )
    if revision != head_revision():
        raise SchemaOutdated(
            f"database schema is at revision {revision}, this finsent needs {head_revision()}: run `finsent db upgrade`"
        )
