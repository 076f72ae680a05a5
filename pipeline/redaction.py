"""Keeping credentials out of listings, error messages, logs and reprs.

`Secret` holds a secret setting (Alertmanager's habit): it prints as `<secret>` wherever it ends up
(repr, str, f-strings, a logged Settings) and only `.reveal()`, called where the value is used,
gives it back. The URL helpers show the harmless parts of a URL (scheme, host, port, the user of a
database) and hide the parts where credentials live: the password, a webhook's userinfo and query
values, a Slack webhook's path (the token is the path).
"""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

SECRET_MASK = "<secret>"
URL_MASK = "***"
_SECRET_QUERY_WORDS = ("pass", "secret", "token", "key", "auth", "sig")


class Secret:
    """A secret string: `<secret>` when printed, the value only through `reveal()`; empty when unset."""

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself: call this where it is used (a connection, a signature), never to print it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __str__(self) -> str:
        return SECRET_MASK if self._value else ""

    def __repr__(self) -> str:
        return SECRET_MASK if self._value else "''"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))


def redacted_database_url(url: str) -> str:
    """A database URL with its password and password-like query values hidden; user, host and
    database stay, so a wrong host or scheme can still be seen."""
    parts = _split(url)
    if parts is None:
        return SECRET_MASK
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    netloc = f"{user}{colon}{URL_MASK if password else ''}{at}{hostport}"
    return _rebuild(parts, netloc, parts.path, _masked_query(parts.query, only_secret_keys=True))


def redacted_webhook_url(url: str) -> str:
    """A webhook URL with its userinfo and every query value hidden (tokens often live there)."""
    parts = _split(url)
    if parts is None:
        return SECRET_MASK
    _userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = f"{URL_MASK}@{hostport}" if at else hostport
    return _rebuild(parts, netloc, parts.path, _masked_query(parts.query, only_secret_keys=False))


def redacted_secret_url(url: str) -> str:
    """scheme://host/*** only: a URL whose path is the credential (Slack's incoming webhooks)."""
    parts = _split(url)
    if parts is None:
        return SECRET_MASK
    hostport = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{hostport}/{URL_MASK}"


def _split(url: str) -> SplitResult | None:
    """The URL's parts, or None when it is too malformed to tell which part is the credential."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return parts if parts.scheme and parts.netloc else None


def _masked_query(query: str, *, only_secret_keys: bool) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs and query:
        return URL_MASK
    masked = [
        (key, URL_MASK if value and (not only_secret_keys or _is_secret_key(key)) else value) for key, value in pairs
    ]
    return "&".join(f"{key}={value}" for key, value in masked)


def _is_secret_key(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_QUERY_WORDS)


def _rebuild(parts: SplitResult, netloc: str, path: str, query: str) -> str:
    return urlunsplit((parts.scheme, netloc, path, query, ""))
