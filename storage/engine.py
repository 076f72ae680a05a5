"""SQLAlchemy engines for PostgreSQL URLs, always on the psycopg 3 driver."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url


def normalise_url(url: str) -> str:
    """postgresql:// and postgres:// URLs -> postgresql+psycopg:// (psycopg 3 is the driver we ship)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def make_engine(url: str, *, pool_size: int = 5, application_name: str = "finsent") -> Engine:
    normalised = make_url(normalise_url(url))
    return create_engine(
        normalised,
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={"application_name": application_name, "connect_timeout": 10},
    )


def redacted(url: str) -> str:
    """The URL with its password hidden, for logs and error messages."""
    try:
        return make_url(normalise_url(url)).render_as_string(hide_password=True)
    except ValueError:
        return url
