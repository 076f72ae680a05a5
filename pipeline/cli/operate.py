"""`finsent db` and `finsent config`: the schema of the database and the settings in effect."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.cli.database import opened_database
from pipeline.config import SETTING_SPECS, Settings


def add_operate_commands(commands: Any) -> None:
    database = commands.add_parser("db", description="database schema")
    database_commands = database.add_subparsers(title="db commands", metavar="ACTION", required=True)
    upgrade = database_commands.add_parser("upgrade", help="migrate the database to this version's schema")
    upgrade.set_defaults(handler=db_upgrade)
    current = database_commands.add_parser("current", help="print the schema revision of the database")
    current.set_defaults(handler=db_current)

    config = commands.add_parser("config", description="show every setting, its variable, value and meaning")
    config.set_defaults(handler=show_config)


def db_upgrade(settings: Settings, _arguments: argparse.Namespace) -> int:
    from storage.migrate import upgrade

    with opened_database(settings, migrate=False) as engine:
        print(f"database at revision {upgrade(engine)}")
    return 0


def db_current(settings: Settings, _arguments: argparse.Namespace) -> int:
    from storage.migrate import current_revision, head_revision

    with opened_database(settings, migrate=False) as engine:
        revision = current_revision(engine)
    print(f"database revision: {revision or 'none (empty database)'}; this finsent needs: {head_revision()}")
    return 0


def show_config(settings: Settings, _arguments: argparse.Namespace) -> int:
    """Every setting by section, its value as one would type it; secrets show as <secret>, URLs with
    their credentials hidden."""
    section = None
    for spec in SETTING_SPECS:
        if spec.section != section:
            print(f"\n# {spec.section}" if section else f"# {spec.section}")
            section = spec.section
        secret = " (secret)" if spec.secret else ""
        print(f"{spec.env_name}={spec.typed(getattr(settings, spec.field))}\n"
              f"    {spec.help}{secret} (default: {spec.default or 'empty'})")
    return 0
