"""The dashboard in a real headless Chromium, over the real API, on a database filled by a real
worker run and a real detection pass: the user types the token, sees the alert, the emotion curve
and the alert's span, reads its evidence, acks it through the page, and the API shows it acknowledged.

A screenshot is checked by counting pixels of the curve's and the span's colours; with
FINSENT_UPDATE_DOCS_IMAGES=1 it is also written to docs/images/dashboard.png for the README.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from pipeline.alerting.scheduler import build_parts
from pipeline.config import Settings
from storage.models import Alert, ArticleScore
from tests.conftest import Topics
from tests.integration.test_alert_scheduler import BAD_NEWS, NEWS_START, ROUTINE
from tests.integration.test_ingestion import RunningWorker
from tests.support.alert_history import WIDTH
from tests.support.api_server import serving
from tests.support.broker_io import produce, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "dashboard.png"
COMPANIES = {"BA": "Boeing", "INTC": "Intel", "NFLX": "Netflix", "PFE": "Pfizer"}
BUCKETS = 24
BURST_BUCKET = 16
# The chart's colours (pipeline/api/static/dashboard.js COLOURS), as RGB in 0..1.
CURVE_RGB = (0x1F / 255, 0x5F / 255, 0xBF / 255)
SPAN_RGB = (0xFF / 255, 0xD8 / 255, 0x8A / 255)


def small_news(start: datetime = NEWS_START) -> list[tuple[bytes | None, bytes]]:
    """Two hours of routine news (one article per ticker and 5-minute bucket) and the bad Pfizer
    headlines inside one bucket 80 minutes in: 104 articles (detection wants an hour of news for its
    prior). The times are fixed in the past, so the wall clock closes every bucket in one pass."""
    messages = []
    for k in range(BUCKETS):
        for index, (ticker, name) in enumerate(COMPANIES.items()):
            published = start + timedelta(seconds=WIDTH * k + 20 + 11 * index)
            messages.append({"id": f"routine-{k}-{ticker}", "published_at": published.isoformat(),
                             "headline": ROUTINE[(k + index) % len(ROUTINE)].format(name=name), "tickers": [ticker]})
    for n, headline in enumerate(BAD_NEWS):
        published = start + timedelta(seconds=WIDTH * BURST_BUCKET + 20 + 30 * n)
        messages.append({"id": f"bad-{n}", "published_at": published.isoformat(), "headline": headline, "tickers": ["PFE"]})
    return [(None, json.dumps(message).encode()) for message in messages]


@pytest.fixture
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                              args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def fill_by_worker_and_detection(settings: Settings, engine: Engine, kafka_bootstrap: str, topics: Topics) -> Alert:
    """News through the real broker, scored and stored by the real worker, judged by the scheduler's
    own detection pass: returns the alert it raised about Pfizer."""
    messages = small_news()
    produce(kafka_bootstrap, topics.news, messages)
    worker = RunningWorker(settings)
    try:
        wait_until(lambda: scored(engine) == len(messages), timeout_s=300, what="every article scored by the worker")
    finally:
        worker.stop()
    parts = build_parts(settings.replace(alert_kafka=False), engine)
    try:
        report = parts.detection.run()
    finally:
        parts.close()
    with Session(engine) as session:
        alerts = session.scalars(select(Alert).where(Alert.rule == "negative_news")).all()
        assert [a.entity for a in alerts] == ["PFE"], f"the detection pass raised {[(a.entity, a.rule) for a in alerts]}: {report}"
        session.expunge(alerts[0])
        return alerts[0]


def scored(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(ArticleScore)) or 0)


def colour_pixels(picture: np.ndarray, rgb: tuple[float, float, float], tolerance: float = 0.06) -> int:
    return int((np.abs(picture[..., :3] - np.array(rgb)) <= tolerance).all(axis=-1).sum())


def test_the_dashboard_shows_the_alert_its_curve_and_span_and_acks_it(
    browser: Browser, settings: Settings, engine: Engine, kafka_bootstrap: str, topics: Topics,
    worker_environment: dict[str, str], tmp_path: Path,
) -> None:
    from pipeline.api.app import create_app

    alert = fill_by_worker_and_detection(settings, engine, kafka_bootstrap, topics)
    token = secrets.token_urlsafe(16)
    app = create_app(Settings.load({**worker_environment, "FINSENT_API_TOKENS": f"write:{token}"}), engine)
    with serving(app) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "/")
        # Without a token the API answers 401 and the page asks for one.
        form = page.get_by_test_id("token-form")
        form.wait_for(state="visible", timeout=60_000)
        assert "401" in page.locator("#token-message").inner_text()
        page.get_by_test_id("token-input").fill(token)
        page.get_by_test_id("token-save").click()
        form.wait_for(state="hidden", timeout=60_000)
        assert page.evaluate("sessionStorage.getItem('finsent-api-token')") == token

        row = page.get_by_test_id(f"alert-{alert.id}")
        row.wait_for(timeout=60_000)
        assert all(text in row.inner_text() for text in ("PFE", "negative_news", alert.state, alert.severity))

        first_entity = page.locator("#entities tbody tr").first
        wait_until(lambda: first_entity.get_attribute("data-entity") == "MARKET", timeout_s=30, what="the most active first")
        page.get_by_test_id("order-negative").click()
        wait_until(lambda: first_entity.get_attribute("data-entity") == "PFE", timeout_s=30, what="the most negative (PFE) first")
        page.get_by_test_id("entity-PFE").click()
        check_chart(page, alert)
        check_screenshot(page, tmp_path / "dashboard.png")

        ack = page.get_by_test_id(f"ack-{alert.id}")
        assert ack.is_enabled()
        ack.click()
        wait_until(lambda: page.get_by_test_id(f"ack-{alert.id}").is_disabled(), timeout_s=30, what="the row to show the ack")
        assert page.get_by_test_id(f"acked-{alert.id}").inner_text().strip() != ""
        headers = {"Authorization": f"Bearer {token}"}
        answer = httpx.get(f"{url}/api/v1/alerts/{alert.id}", headers=headers, timeout=30)
        assert answer.status_code == 200
        assert answer.json()["acknowledged_at"] is not None
        assert answer.json()["acknowledged_at"].endswith("Z")

        silence = page.get_by_test_id("silence-form")
        silence.locator("input[name=entity]").fill("PF*")
        silence.locator("input[name=duration]").fill("1h")
        silence.locator("input[name=reason]").fill("known story")
        silence.locator("button[type=submit]").click()
        wait_until(lambda: "PFE" in page.locator("#silence-message").inner_text(), timeout_s=30, what="the silence to match PFE")
        silences = httpx.get(f"{url}/api/v1/silences", headers=headers, timeout=30).json()["items"]
        assert [(s["entity_glob"], s["reason"], s["active"]) for s in silences] == [("PF*", "known story", True)]
        page.get_by_test_id(f"silence-{silences[0]['id']}").wait_for(timeout=30_000)


def check_chart(page: Page, alert: Alert) -> None:
    """The curve through many buckets, the negative share, the alert's labelled span, the axes, the evidence."""
    curve = page.get_by_test_id("emotion-curve")
    wait_until(lambda: curve.count() == 1 and len(re.findall(r"[ML]", curve.get_attribute("d") or "")) >= 20,
               timeout_s=60, what="the emotion curve drawn through 20 or more buckets")
    assert len(re.findall(r"[ML]", page.get_by_test_id("negative-share-curve").get_attribute("d") or "")) >= 20
    span = page.get_by_test_id("alert-span")
    span.first.wait_for(timeout=60_000)
    assert span.count() == 1
    assert span.first.get_attribute("data-alert-id") == str(alert.id)
    assert span.first.get_by_test_id("alert-span-label").text_content() == f"negative_news · {alert.severity}"
    assert page.get_by_test_id("left-axis-label").text_content() == "emotion index (decayed, −1…+1)"
    assert page.get_by_test_id("right-axis-label").text_content() == "negative share"
    ticks = page.get_by_test_id("time-tick").all_text_contents()
    assert len(ticks) >= 3 and all(re.search(r"\d\d:\d\d", tick) for tick in ticks), ticks

    span.first.locator("rect").click()
    evidence = page.get_by_test_id("evidence-headlines")
    evidence.wait_for(timeout=30_000)
    assert any(headline in evidence.inner_text() for headline in BAD_NEWS), "the span's evidence lists the bad headlines"


def check_screenshot(page: Page, shot: Path) -> None:
    """The picture itself shows the curve and the span (pixels of their colours inside the chart)."""
    import matplotlib.image

    page.screenshot(path=str(shot), full_page=True)
    box = page.locator("#chart svg").bounding_box()
    assert box is not None
    picture = matplotlib.image.imread(str(shot))
    chart = picture[int(box["y"]):int(box["y"] + box["height"]), int(box["x"]):int(box["x"] + box["width"])]
    assert colour_pixels(chart, CURVE_RGB) >= 300, "the emotion curve is drawn in the screenshot"
    assert colour_pixels(chart, SPAN_RGB) >= 5000, "the alert's span is drawn in the screenshot"
    if os.environ.get("FINSENT_UPDATE_DOCS_IMAGES") == "1":
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMAGE)
