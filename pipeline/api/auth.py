"""API tokens: the grammar of FINSENT_API_TOKENS and the constant-time lookup of a presented token.

Pure (the standard library only): pipeline/config.py checks the setting with `parse_api_tokens`
when a command starts, and the API's guards (pipeline/api/guards.py) ask `ApiTokens.scope_of`.
No message or repr here ever holds a token: a malformed entry is named by its position.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from enum import StrEnum

_TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
"""RFC 6750's b64token: what an `Authorization: Bearer` header can carry without quoting."""


class Scope(StrEnum):
    """What a token may do: read the GET endpoints, or also write (ack, silence)."""

    READ = "read"
    WRITE = "write"

    def allows(self, needed: Scope) -> bool:
        """Write implies read."""
        return self is Scope.WRITE or needed is Scope.READ


@dataclass(frozen=True)
class ApiTokens:
    """The configured tokens by scope; empty: authentication is off (allowed on loopback only)."""

    _tokens: tuple[tuple[bytes, Scope], ...] = field(default=(), repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def count(self, scope: Scope) -> int:
        return sum(1 for _, given in self._tokens if given is scope)

    def scope_of(self, presented: str) -> Scope | None:
        """The scope of `presented`, None for an unknown token. Every configured token is compared,
        each with hmac.compare_digest, so the time taken says nothing about how close a guess was
        nor which token it resembled."""
        candidate = presented.encode("utf-8", "surrogatepass")
        found: Scope | None = None
        for token, scope in self._tokens:
            if hmac.compare_digest(token, candidate) and found is None:
                found = scope
        return found

    def __repr__(self) -> str:
        return f"ApiTokens(read={self.count(Scope.READ)}, write={self.count(Scope.WRITE)})"


def parse_api_tokens(text: str) -> ApiTokens:
    """Comma-separated `read:TOKEN` / `write:TOKEN` pairs; empty text: no tokens. Raises ValueError
    naming the entry's position and the fix, never the token."""
    if not text.strip():
        return ApiTokens()
    entries = text.split(",")
    tokens: list[tuple[bytes, Scope]] = []
    seen: dict[str, int] = {}
    for position, entry in enumerate(entries, start=1):
        where = f"entry {position} of {len(entries)}"
        if not entry.strip():
            raise ValueError(f"{where} is empty: drop the extra comma")
        scope_text, colon, token = entry.strip().partition(":")
        if not colon:
            raise ValueError(f"{where} has no scope: write each entry as read:TOKEN or write:TOKEN")
        try:
            scope = Scope(scope_text.strip().lower())
        except ValueError:
            raise ValueError(f"{where} has an unknown scope: write read:TOKEN or write:TOKEN") from None
        if not token:
            raise ValueError(f"{where} has no token after {scope.value}:")
        if not _TOKEN.match(token):
            raise ValueError(f"{where} holds a token with characters a Bearer header cannot carry: "
                             "use letters, digits and -._~+/ (e.g. from `openssl rand -hex 32`)")
        if token in seen:
            raise ValueError(f"{where} repeats the token of entry {seen[token]}: keep one (write implies read)")
        seen[token] = position
        tokens.append((token.encode("ascii"), scope))
    return ApiTokens(tuple(tokens))
