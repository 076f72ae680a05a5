"""PostgreSQL side of finsent: models, engine (embedded default), migrations, idempotent writes, queries.

Knows nothing of Kafka or of the model; callers pass plain records in. Every SQL statement of
finsent lives in this package.

The public face, for analysts and scripts (pandas DataFrames out):

    import storage
    with storage.connect() as database:              # FINSENT_DATABASE_URL's value, or the embedded server
        frame = storage.stored_buckets(database.engine, "PFE", 300, start, end)

Names are loaded on first use, so importing one submodule does not import pandas.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_PUBLIC = {
    "connect": "storage.connection",
    "Database": "storage.connection",
    "DatabaseUnreachable": "storage.connection",
    "articles_for_entity": "storage.queries",
    "entity_summary": "storage.queries",
    "entity_activity": "storage.queries",
    "stored_buckets": "storage.queries",
    "filled_series": "storage.queries",
    "alerts_frame": "storage.queries",
    "data_clock": "storage.queries",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)
