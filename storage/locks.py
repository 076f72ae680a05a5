"""Every PostgreSQL advisory lock finsent takes: the keys in one place, so no two ever collide.

One-key locks (migrations, detection passes, scheduler leadership) and the two-key per-entity
locks of the series (namespace `SERIES_LOCK_NAMESPACE`) live in different key spaces, so they
never meet. Transaction locks (`pg_advisory_xact_lock`) go with the transaction; the leader's
session lock goes with its connection, so a dead leader frees it by dying.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy import Connection, Integer, bindparam
from sqlalchemy.dialects.postgresql import ARRAY

MIGRATION_LOCK_KEY = 0x66696E73656E74  # 'finsent'
DETECTION_PASS_LOCK_KEY = 0x66696E73_70617373  # 'finspass'
SCHEDULER_LEADER_LOCK_KEY = 0x66696E73_6C656164  # 'finslead'
SERIES_LOCK_NAMESPACE = 0x74696D65  # 'time': first key of the per-entity two-key locks

_ENTITY_LOCKS = sa.text("SELECT pg_advisory_xact_lock(:namespace, key) FROM unnest(:keys) AS key").bindparams(
    bindparam("keys", type_=ARRAY(Integer))
)


def lock_migrations(connection: Connection) -> None:
    """Serialise schema upgrades for the rest of the transaction: concurrent workers never migrate twice."""
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))


def lock_detection_passes(connection: Connection) -> None:
    """Serialise detection passes (scheduler replicas, `backtest --write`) for the rest of the transaction."""
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock(DETECTION_PASS_LOCK_KEY)))


def entity_lock_key(entity: str) -> int:
    """A stable signed 32-bit key for the entity (Python's hash() differs between processes)."""
    digest = hashlib.blake2b(entity.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_entities(connection: Connection, entities: Iterable[str]) -> None:
    """Take a transaction-scoped advisory lock per entity, waiting for other holders to commit.

    Locks are taken in ascending key order (a total order every worker shares, so two workers can
    never each hold one lock the other wants), in one statement: a function scan over an array
    visits it in order. Entities whose keys collide simply share one lock.
    """
    keys = sorted({entity_lock_key(entity) for entity in entities})
    if keys:
        connection.execute(_ENTITY_LOCKS, {"namespace": SERIES_LOCK_NAMESPACE, "keys": keys})


def try_session_lock(connection: Connection, key: int) -> bool:
    """Take the session lock `key` if free (it is held until released or the connection ends)."""
    acquired = bool(connection.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar())
    connection.commit()
    return acquired


def release_session_lock(connection: Connection, key: int) -> None:
    connection.execute(sa.select(sa.func.pg_advisory_unlock(key)))
    connection.commit()


def check_alive(connection: Connection) -> None:
    """A round trip on `connection`: raises the driver's error when it (and any session lock) is gone."""
    connection.execute(sa.text("SELECT 1"))
    connection.commit()
