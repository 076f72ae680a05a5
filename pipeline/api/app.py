"""The API's composition root: `create_app(settings, engine)` turns the settings into the app's parts
(tokens, CORS, the stored widths) once; the routes see only an ApiContext.

Layout: /healthz and the dashboard (/, /static) need no token; everything else is under /api/v1
(read token for GET, write token for POST and DELETE); /openapi.json and /docs describe it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from pipeline.api.auth import ApiTokens, parse_api_tokens
from pipeline.api.context import ApiContext
from pipeline.api.errors import install_error_handlers
from pipeline.api.params import known_query_only
from pipeline.api.routes import alerts, articles, dashboard, health, silences
from pipeline.api.routes.entities import entity_routes
from pipeline.config import Settings

API_PREFIX = "/api/v1"
_DESCRIPTION = """Entities, emotion series, scored articles, alerts with their evidence, acks and silences of a
finsent database. Send `Authorization: Bearer TOKEN` with a token of FINSENT_API_TOKENS: a read token for GET,
a write token for POST and DELETE. Times are ISO 8601 in UTC. Lists take `limit` (1-500, default 50) and `offset`
and answer `items`, `limit`, `offset` and `total`. Errors are `{"detail": "..."}`, one line naming the value and the fix."""


def create_app(settings: Settings, engine: Engine) -> FastAPI:
    tokens = parse_api_tokens(settings.api_tokens.reveal())
    app = FastAPI(title="finsent API", version=_version(), description=_DESCRIPTION)
    app.state.tokens = tokens
    app.state.context = ApiContext(engine=engine, bucket_widths=settings.bucket_widths, market_entity=settings.market_entity,
                                   silence_max_seconds=settings.silence_max)
    install_error_handlers(app)
    if settings.api_cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.api_cors_origins), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.include_router(health.router)
    checked = [Depends(known_query_only)]
    app.include_router(entity_routes(settings.bucket_widths), prefix=API_PREFIX, dependencies=checked)
    app.include_router(articles.router, prefix=API_PREFIX, dependencies=checked)
    app.include_router(alerts.router, prefix=API_PREFIX, dependencies=checked)
    app.include_router(silences.router, prefix=API_PREFIX, dependencies=checked)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR, check_dir=False), name="static")
    return app


def authentication_off(app: FastAPI) -> bool:
    """Whether the app serves without tokens (allowed by `finsent serve` on loopback only)."""
    tokens = app.state.tokens
    return isinstance(tokens, ApiTokens) and not tokens.enabled


def _version() -> str:
    try:
        return version("finsent")
    except PackageNotFoundError:
        return "0"
