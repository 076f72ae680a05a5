"""Leader election among scheduler replicas with a PostgreSQL session advisory lock.

The leader holds `pg_try_advisory_lock` on one dedicated connection for as long as it lives; when
the process or its connection dies, PostgreSQL releases the lock and a standby takes over at its
next try. Before each pass the leader checks that its connection is still alive, so it never
acts on a lock it silently lost. Correctness does not rest on this alone: passes also serialise
on a transaction lock, and unique keys refuse a second copy of any alert or delivery.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from storage.locks import SCHEDULER_LEADER_LOCK_KEY, check_alive, release_session_lock, try_session_lock

log = logging.getLogger(__name__)


class Leadership:
    def __init__(self, engine: Engine, key: int = SCHEDULER_LEADER_LOCK_KEY) -> None:
        self._engine = engine
        self._key = key
        self._connection: Connection | None = None

    @property
    def is_leader(self) -> bool:
        return self._connection is not None

    def ensure(self) -> bool:
        """True when this process is (still, or now) the leader."""
        if self._connection is not None:
            try:
                check_alive(self._connection)
                return True
            except DBAPIError as error:
                log.warning("leadership_lost", extra={"kv": {"error": " ".join(str(error.orig).split())[:200]}})
                self._drop()
        try:
            connection = self._engine.connect()
        except DBAPIError:
            return False
        try:
            acquired = try_session_lock(connection, self._key)
        except DBAPIError:
            connection.close()
            return False
        if not acquired:
            connection.close()
            return False
        self._connection = connection
        log.info("leadership_acquired", extra={"kv": {}})
        return True

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            release_session_lock(self._connection, self._key)
        except DBAPIError:
            pass  # the lock goes with the connection anyway
        self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except DBAPIError:
                pass
            self._connection = None
