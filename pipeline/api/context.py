"""What the routes need of the configuration, as plain values: app.py (the API's composition root)
reads the settings once and the routes never see them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from fastapi import Request
from sqlalchemy import Engine


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class ApiContext:
    engine: Engine
    bucket_widths: tuple[int, ...]
    """FINSENT_BUCKET_WIDTHS: the widths a series can be read in; the smallest feeds the entities' index."""
    market_entity: str
    silence_max_seconds: int
    clock: Callable[[], datetime] = field(default=_now)


def api_context(request: Request) -> ApiContext:
    """The dependency that hands a route its context (set on the app by create_app)."""
    context = request.app.state.context
    assert isinstance(context, ApiContext)
    return context
