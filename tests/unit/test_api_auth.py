"""FINSENT_API_TOKENS: its grammar, the scope rules, and that no token ever shows in a repr or an error.

The guards are checked through the app itself: a refused request never reaches the database, so
the app here has an engine on an address where nothing listens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pipeline.api.app import create_app
from pipeline.api.auth import ApiTokens, Scope, parse_api_tokens
from pipeline.config import SETTING_SPECS, Settings
from pipeline.errors import ConfigError
from storage.engine import make_engine

READ_TOKEN = "r3ad-s3cret-tok3n"
WRITE_TOKEN = "wr1te-s3cret-tok3n"


def test_good_pairs_give_each_token_its_scope() -> None:
    tokens = parse_api_tokens(f" read:{READ_TOKEN} , WRITE:{WRITE_TOKEN}")
    assert tokens.enabled
    assert tokens.scope_of(READ_TOKEN) is Scope.READ and tokens.scope_of(WRITE_TOKEN) is Scope.WRITE
    assert tokens.scope_of("unknown") is None and tokens.scope_of("") is None
    assert tokens.scope_of(READ_TOKEN[:-1]) is None and tokens.scope_of(READ_TOKEN + "x") is None, "no prefix matches"
    assert tokens.scope_of(READ_TOKEN.upper()) is None, "tokens are case-sensitive"
    assert tokens.scope_of("tok\udcff") is None, "an undecodable header value is just unknown"
    assert (tokens.count(Scope.READ), tokens.count(Scope.WRITE)) == (1, 1)


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_means_no_tokens(text: str) -> None:
    tokens = parse_api_tokens(text)
    assert not tokens.enabled and tokens == ApiTokens() and tokens.scope_of("anything") is None


@pytest.mark.parametrize(("text", "message"), [
    (f"{READ_TOKEN}", "entry 1 of 1 has no scope: write each entry as read:TOKEN or write:TOKEN"),
    (f"read:{READ_TOKEN},admin:{WRITE_TOKEN}", "entry 2 of 2 has an unknown scope"),
    ("read:", "entry 1 of 1 has no token after read:"),
    (f"read:{READ_TOKEN},,write:{WRITE_TOKEN}", "entry 2 of 3 is empty: drop the extra comma"),
    (f"read:{READ_TOKEN},", "entry 2 of 2 is empty"),
    (f"write:{WRITE_TOKEN} x", "entry 1 of 1 holds a token with characters a Bearer header cannot carry"),
    (f"write:{WRITE_TOKEN}:{READ_TOKEN}", "entry 1 of 1 holds a token with characters"),
    (f"read:{READ_TOKEN},write:{READ_TOKEN}", "entry 2 of 2 repeats the token of entry 1: keep one (write implies read)"),
    (f"read:{READ_TOKEN},read:{READ_TOKEN}", "entry 2 of 2 repeats the token of entry 1"),
])
def test_malformed_entries_are_named_by_position_never_by_token(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_api_tokens(text)
    assert message in str(raised.value)
    assert READ_TOKEN not in str(raised.value) and WRITE_TOKEN not in str(raised.value) and "admin" not in str(raised.value)


def test_a_malformed_setting_is_one_config_line_without_the_token() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.load({"FINSENT_API_TOKENS": f"read:{READ_TOKEN},{WRITE_TOKEN}"})
    assert str(raised.value) == ("FINSENT_API_TOKENS='<secret>' is invalid: entry 2 of 2 has no scope: "
                                 "write each entry as read:TOKEN or write:TOKEN")
    assert Settings.load({"FINSENT_API_TOKENS": "nonsense"}, sections=["database"]) is not None, "only serve checks it"


def test_write_implies_read_and_read_never_writes() -> None:
    assert Scope.WRITE.allows(Scope.READ) and Scope.WRITE.allows(Scope.WRITE)
    assert Scope.READ.allows(Scope.READ) and not Scope.READ.allows(Scope.WRITE)


def test_tokens_appear_in_no_repr_nor_listing() -> None:
    text = f"read:{READ_TOKEN},write:{WRITE_TOKEN}"
    tokens = parse_api_tokens(text)
    assert repr(tokens) == "ApiTokens(read=1, write=1)" and READ_TOKEN not in str(tokens)
    settings = Settings.load({"FINSENT_API_TOKENS": text})
    spec = next(spec for spec in SETTING_SPECS if spec.env_name == "FINSENT_API_TOKENS")
    assert spec.secret and spec.shown(settings.api_tokens) == "<secret>" and spec.typed(settings.api_tokens) == "<secret>"
    for shown in (repr(settings), str(settings.api_tokens), f"{settings.api_tokens}"):
        assert READ_TOKEN not in shown and WRITE_TOKEN not in shown
    assert settings.api_tokens.reveal() == text


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings.load({"FINSENT_API_TOKENS": f"read:{READ_TOKEN},write:{WRITE_TOKEN}"})
    nowhere = make_engine("postgresql://nobody@127.0.0.1:9/none")
    with TestClient(create_app(settings, nowhere)) as test_client:
        yield test_client


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/entities"), ("GET", "/api/v1/alerts/1"), ("POST", "/api/v1/alerts/1/ack"), ("DELETE", "/api/v1/silences/1"),
])
@pytest.mark.parametrize("authorization", [None, "Bearer unknown-token", f"Basic {READ_TOKEN}", f"Bearer {READ_TOKEN}x", "Bearer"])
def test_no_or_unknown_token_is_401_with_the_bearer_challenge(client: TestClient, method: str, path: str,
                                                              authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.request(method, path, headers=headers)
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    assert READ_TOKEN not in response.text and "unknown-token" not in response.text


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/v1/alerts/1/ack"), ("POST", "/api/v1/silences"),
                                              ("DELETE", "/api/v1/silences/1")])
def test_a_read_token_is_403_where_the_api_writes(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, headers={"Authorization": f"Bearer {READ_TOKEN}"},
                              json={"entity": "PFE", "duration": "1h"})
    assert response.status_code == 403
    assert response.json() == {"detail": "this endpoint writes: it needs a write:TOKEN of FINSENT_API_TOKENS, "
                                         "and the token given may only read"}


def test_a_known_token_passes_to_validation(client: TestClient) -> None:
    """Past the guard a bad value is the one-line 422; the database is never asked."""
    for token in (READ_TOKEN, WRITE_TOKEN):
        response = client.get("/api/v1/entities", params={"limit": "9999"}, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 422
        assert response.json() == {"detail": "query parameter limit='9999' is invalid: Input should be less than or equal to 500"}


def test_a_database_that_does_not_answer_is_503_not_500(client: TestClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json() == {"status": "unavailable", "database": "unreachable"}
    listed = client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {READ_TOKEN}"})
    assert listed.status_code == 503 and "database is unreachable" in listed.json()["detail"]
    assert "nobody" not in listed.text, "the database URL stays in the log"
