"""GET /healthz: whether the API and its database answer, for probes; no token needed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from pipeline.api.context import ApiContext, api_context
from pipeline.api.schemas import Health
from storage.locks import check_alive

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health, "description": "the database does not answer"}})
def healthz(context: Annotated[ApiContext, Depends(api_context)]) -> Health | JSONResponse:
    """{"status": "ok", "database": "ok"}, or 503 with database "unreachable"."""
    try:
        with context.engine.connect() as connection:
            check_alive(connection)
    except DBAPIError:
        return JSONResponse(Health(status="unavailable", database="unreachable").model_dump(), status_code=503)
    return Health(status="ok", database="ok")
