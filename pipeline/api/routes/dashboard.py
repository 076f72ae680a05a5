"""The dashboard page at / and its assets under /static (pipeline/api/static/), without a token: the
page holds no data, it asks the API with the token its user types."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from pipeline.api.errors import not_found

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
router = APIRouter()


@router.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        not_found("the dashboard page is not installed (pipeline/api/static/index.html); the API is under /api/v1 (see /docs)")
    return FileResponse(page, media_type="text/html")
