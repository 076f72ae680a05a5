"""Severity levels, ordered, and how far past its threshold a value must be for each."""

from __future__ import annotations

SEVERITIES: tuple[str, ...] = ("warning", "major", "critical")

# A rule's excess is value / threshold (>= 1 when it triggers). Alertmanager-style levels:
# just past the threshold is a warning, 1.5x past is major, 2.5x past is critical.
_MAJOR_EXCESS = 1.5
_CRITICAL_EXCESS = 2.5


def severity_for_excess(excess: float) -> str:
    if excess >= _CRITICAL_EXCESS:
        return "critical"
    if excess >= _MAJOR_EXCESS:
        return "major"
    return "warning"


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def parse_severity(text: str) -> str:
    value = text.strip().lower()
    if value not in SEVERITIES:
        raise ValueError(f"{text!r} is not a severity; expected one of {', '.join(SEVERITIES)}")
    return value
