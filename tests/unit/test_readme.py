"""The README stays true: two commands first, every setting documented with its default."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.config import SETTING_SPECS

README = Path(__file__).resolve().parents[2] / "README.md"


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_first_two_shell_blocks_are_demo_then_tests() -> None:
    text = README.read_text(encoding="utf-8")
    first_screen = text[: text.index("\n## ")]
    assert [block.strip() for block in shell_blocks(first_screen)] == ["make demo", "make test"]


def test_every_setting_is_documented_with_its_default() -> None:
    text = README.read_text(encoding="utf-8")
    for spec in SETTING_SPECS:
        row = next((line for line in text.splitlines() if line.startswith(f"| `{spec.env_name}` |")), None)
        assert row is not None, f"{spec.env_name} missing from the README configuration table"
        if spec.default:
            assert f"`{spec.default}`" in row, f"{spec.env_name}: README default differs from {spec.default!r}"
