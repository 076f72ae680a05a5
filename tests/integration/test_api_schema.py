"""Schemathesis against the API's own OpenAPI spec, on a real uvicorn server over a seeded database,
with a write token: every operation answers as its spec says (status, content type, body schema),
rejects what the spec rules out, and never fails with a 5xx.

The spec cannot say that `since` must come before `until`, that a filled series has at most
20,000 buckets, or that a silence must end in the future within FINSENT_SILENCE_MAX, so a 422 for
values the spec allows is accepted (it is declared on every operation); a 5xx never is.

The schema is loaded when the module is collected (schemathesis makes one test per operation
from it), from an app whose engine is never used; the test checks that the server it fuzzes
serves that same spec."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from sqlalchemy import Engine

from pipeline.api.app import create_app
from pipeline.config import Settings
from storage.engine import make_engine
from tests.support.api_history import TOKENS, WRITE, seed
from tests.support.api_server import serving

pytestmark = pytest.mark.integration

CONFIG = {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "422"]}}}
SPEC = create_app(Settings.load({"FINSENT_API_TOKENS": TOKENS}), make_engine("postgresql://spec-only@127.0.0.1:9/none")).openapi()
schema = schemathesis.openapi.from_dict(SPEC, config=SchemathesisConfig.from_dict(CONFIG))


@pytest.fixture
def base_url(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    seed(engine, database_url, monkeypatch)
    app = create_app(Settings.load({"FINSENT_DATABASE_URL": database_url, "FINSENT_API_TOKENS": TOKENS}), engine)
    with serving(app) as url:
        assert httpx.get(f"{url}/openapi.json", timeout=30).json() == SPEC, "the fuzzed server serves the spec fuzzed"
        yield url


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_spec(case: schemathesis.Case, base_url: str) -> None:
    response = case.call_and_validate(base_url=base_url, headers=WRITE)
    assert response.status_code < 500, response.text
