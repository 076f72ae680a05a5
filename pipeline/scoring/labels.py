"""The three sentiment labels and how other models' label names map onto them."""

from __future__ import annotations

LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")
NEGATIVE, NEUTRAL, POSITIVE = range(3)

_SYNONYMS = {
    "negative": "negative", "neg": "negative", "bearish": "negative",
    "neutral": "neutral", "neu": "neutral",
    "positive": "positive", "pos": "positive", "bullish": "positive",
}


def canonical_label(name: str) -> str | None:
    """'Negative' / 'NEG' / 'bearish' -> 'negative'; None when the name is not a sentiment label."""
    return _SYNONYMS.get(name.strip().lower())
