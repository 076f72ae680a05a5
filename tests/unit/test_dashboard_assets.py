"""The dashboard's static files (pipeline/api/static/): self-contained (no CDN, nothing fetched from
elsewhere), consistent with each other, and shipped in the package. The page's behaviour is tested in
a real browser by tests/integration/test_dashboard_browser.py."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "pipeline" / "api" / "static"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
"""An XML namespace name, never fetched: the one absolute URL the script may hold."""


def _text(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def test_the_page_loads_only_its_own_assets() -> None:
    page = _text("index.html")
    loaded = re.findall(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)="([^"]*)\"""", page)
    assert sorted(loaded) == ["/static/dashboard.css", "/static/dashboard.js", "data:,"]
    for asset in loaded:
        if asset.startswith("/static/"):
            assert (STATIC / asset.removeprefix("/static/")).is_file(), asset


def test_no_file_names_another_origin() -> None:
    for path in sorted(STATIC.iterdir()):
        text = path.read_text(encoding="utf-8").replace(SVG_NAMESPACE, "")
        assert not re.search(r"(?:https?:)?//[\w.-]+\.\w+/|@import|\burl\(", text), f"{path.name} refers to another origin"


def test_every_element_the_script_looks_up_is_on_the_page() -> None:
    ids = set(re.findall(r'\bid="([^"]+)"', _text("index.html")))
    wanted = set(re.findall(r"""\$\("#([\w-]+)""", _text("dashboard.js")))
    assert wanted, "the script looks elements up with $(\"#id\")"
    assert wanted <= ids, f"missing on the page: {sorted(wanted - ids)}"


def test_the_chart_colours_match_the_legend() -> None:
    script = re.search(r"const COLOURS = \{([^}]*)\}", _text("dashboard.js"))
    assert script is not None
    colours = dict(re.findall(r'(\w+): "(#[0-9a-f]{6})"', script.group(1)))
    legend = dict(re.findall(r"--(\w+): (#[0-9a-f]{6});", _text("dashboard.css")))
    for key in ("curve", "share", "bars", "span"):
        assert colours[key] == legend[key], key


def test_the_static_files_ship_in_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["pipeline"]
    assert "api/static/*" in patterns
    assert {path.name for path in STATIC.iterdir()} == {"index.html", "dashboard.js", "dashboard.css"}
