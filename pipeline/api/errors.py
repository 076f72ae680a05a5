"""Every error the API answers is `{"detail": "<one line naming the value and the fix>"}`.

FastAPI's own validation errors are lists of dicts meant for programs; here the first problem
becomes one sentence naming the parameter, what was given and what is accepted, with status 422
(the status FastAPI uses, declared on every operation). A database that stops answering is a 503,
and anything unexpected a 500 whose details go to the log, never to the client.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.api.schemas import ErrorBody

log = logging.getLogger(__name__)

_SHOWN_INPUT_CHARS = 60
_PLACES = {"query": "query parameter", "path": "path parameter", "header": "header", "body": "body field"}


def unprocessable(detail: str) -> NoReturn:
    """Refuse a request whose values parse but do not fit (a window backwards, a width not stored)."""
    raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def not_found(detail: str) -> NoReturn:
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for these statuses, all with the ErrorBody schema."""
    meaning = {
        401: "no token, or one that is not configured (FINSENT_API_TOKENS)",
        403: "a read token on an endpoint that writes",
        404: "no such entity, alert or silence",
        422: "a value that does not parse or fit; the detail names it and what is accepted",
    }
    return {code: {"model": ErrorBody, "description": meaning[code]} for code in codes}


def validation_detail(errors: list[Mapping[str, Any]]) -> str:
    """The first of pydantic's errors as one line: where, the value given and what is accepted."""
    if not errors:
        return "the request is invalid"
    error = errors[0]
    location = [str(part) for part in error.get("loc", ())]
    place = _PLACES.get(location[0], location[0]) if location else "value"
    name = ".".join(location[1:])
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "the body is not valid JSON: send an object such as {\"entity\": \"PFE\", \"duration\": \"2h\"}"
    if not name:
        return "the body must be a JSON object such as {\"entity\": \"PFE\", \"duration\": \"2h\", \"reason\": \"...\"}"
    if kind == "missing":
        return f"{place} {name} is required"
    if kind == "extra_forbidden":
        return f"{place} {name} is not accepted: the body takes entity, duration or ends_at, and reason"
    given = _shown(error.get("input"))
    message = "expected true or false" if kind == "bool_parsing" else str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{place} {name}={given} is invalid: {message}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_INPUT_CHARS else text[: _SHOWN_INPUT_CHARS - 1] + "…"


async def _validation_failed(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"detail": validation_detail(list(error.errors()))}, status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's and Starlette's own refusals in the API's form: an unreadable body is a 422 like every
    other bad value, and a 405 lists in Allow every method the path has (not only the first route's)."""
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == status.HTTP_400_BAD_REQUEST:
        return JSONResponse({"detail": "the body could not be read: send JSON such as {\"entity\": \"PFE\", \"duration\": \"2h\"}"},
                            status.HTTP_422_UNPROCESSABLE_CONTENT)
    if error.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        given = (error.headers or {}).get("Allow", "")
        methods = _documented_methods(request) or sorted(method.strip() for method in given.split(",") if method.strip())
        return JSONResponse({"detail": f"{request.method} is not allowed on {request.url.path}: use {' or '.join(methods)}"},
                            error.status_code, headers={"Allow": ", ".join(methods)})
    return JSONResponse({"detail": str(error.detail)}, error.status_code, headers=error.headers)


def _documented_methods(request: Request) -> list[str]:
    """The methods the OpenAPI spec gives the request's path, e.g. GET and POST for /api/v1/silences."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


async def _database_down(request: Request, error: Exception) -> JSONResponse:
    log.warning("api_database_unreachable", extra={"kv": {"path": request.url.path, "error": " ".join(str(error).split())[:300]}})
    return JSONResponse({"detail": "the database is unreachable: try again shortly; GET /healthz tells when it is back"},
                        status.HTTP_503_SERVICE_UNAVAILABLE)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.error("api_request_failed", exc_info=error, extra={"kv": {"method": request.method, "path": request.url.path}})
    return JSONResponse({"detail": "internal error: the server log has the details (event api_request_failed)"},
                        status.HTTP_500_INTERNAL_SERVER_ERROR)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(Exception, _unexpected)
