"""Text from the news, made safe for terminals, log files and spreadsheets.

Headlines and ids come from producers nobody vouches for. Written raw, an ESC starts a terminal
escape sequence (clearing the screen, retitling the window), a CR or U+2028 forges a new log line,
and a bidi override (Trojan Source) shows text in another order than it is stored. `escape_controls`
spells those characters out (`\\x1b`, `\\r`, `\\u202e`) and leaves every other character alone;
`neutralise_formula` keeps a CSV cell from being run as a spreadsheet formula (OWASP's advice).
"""

from __future__ import annotations

import re

_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 and C1 controls and DEL; the line and paragraph separators; the bidi embeddings, overrides and
# isolates (U+202A-U+202E, U+2066-U+2069) with the bidi marks (ALM, LRM, RLM).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u061c\u200e\u200f]")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP, CSV injection)."""


def has_controls(text: str) -> bool:
    return _UNSAFE.search(text) is not None


def escape_controls(text: str) -> str:
    """Control, line-separator and bidi characters as visible escapes; everything else unchanged."""
    return _UNSAFE.sub(_escape, text)


def neutralise_formula(text: str) -> str:
    """A cell that a spreadsheet would evaluate, prefixed with a single quote so it stays text."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    if character in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
