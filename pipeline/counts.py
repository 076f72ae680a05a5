"""Positive numbers typed on a command line (counts, rates, shares) as argparse `type=` converters.

Shared by `finsent` and the bench scripts, hence outside pipeline/cli. Each refusal is an
ArgumentTypeError naming the value, which `finsent` prints as its one `finsent: error:` line."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

Number = TypeVar("Number", int, float)


def positive_int(text: str) -> int:
    """Counts such as --top or --partitions."""
    return _positive(text, int, "a whole number")


def positive_float(text: str) -> float:
    """Rates and factors such as --speedup or --lr."""
    return _positive(text, float, "a number")


def fraction(text: str) -> float:
    """A share strictly between 0 and 1, such as --validation-fraction."""
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def _positive(text: str, kind: Callable[[str], Number], noun: str) -> Number:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value
