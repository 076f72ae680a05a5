"""End to end with the shipped model on CPU: Kafka -> worker -> scores and buckets in PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from pipeline.config import Settings
from tests.conftest import Topics
from tests.integration.test_ingestion import RunningWorker
from tests.support.broker_io import produce, wait_until

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
NEGATIVE_HEADLINE = "Acme shares plunge after the company issues a profit warning and cuts its dividend"
POSITIVE_HEADLINE = "Acme shares soar after record quarterly profit beats estimates and the dividend is raised"
RISK_HEADLINE = "Acme chairman arrested in Tokyo over pay misreporting"
COPY_OF_RISK = "UPDATE 1-Acme chairman arrested in Tokyo over pay misreporting - Reuters"
NEUTRAL_LINES = [
    "Acme to hold its annual general meeting in Helsinki on Tuesday",
    "Acme names new head of investor relations",
    "Acme will publish its interim report on 5 May",
]


def news_stream() -> list[tuple[bytes | None, bytes]]:
    """Forty articles about ACME over two hours, with a negative, a positive and a risk-event headline
    (and a syndicated copy of it three minutes later) among them."""
    messages = []
    for index in range(40):
        headline = NEUTRAL_LINES[index % len(NEUTRAL_LINES)] + f" ({index})"
        if index == 7:
            headline = NEGATIVE_HEADLINE
        if index == 31:
            headline = POSITIVE_HEADLINE
        if index == 20:
            headline = RISK_HEADLINE
        if index == 21:
            headline = COPY_OF_RISK
        published = START + timedelta(minutes=3 * index)
        messages.append((None, json.dumps({"id": f"e2e-{index}", "published_at": published.isoformat(),
                                            "headline": headline, "tickers": ["ACME"]}).encode()))
    return messages


def direct_buckets(scores: pd.DataFrame, width: int, half_life: float) -> pd.DataFrame:
    """The series computed straight from stored article scores, independently of pipeline/series.py."""
    seconds = (scores["published_at"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    epoch = seconds.astype("int64")
    scores = scores.assign(bucket=(epoch // width) * width, sentiment=scores["p_positive"] - scores["p_negative"],
                           negative=(scores[["p_negative", "p_neutral", "p_positive"]].to_numpy().argmax(axis=1) == 0))
    rows = []
    for bucket, group in scores.groupby("bucket"):
        end = bucket + width
        history = scores[epoch < end]
        weights = np.power(2.0, -(end - seconds[history.index]) / half_life)
        rows.append({"bucket": bucket, "article_count": len(group), "mean_p_negative": group["p_negative"].mean(),
                     "negative_share": group["negative"].mean(), "mean_sentiment": group["sentiment"].mean(),
                     "emotion_index": float((weights * history["sentiment"]).sum() / weights.sum())})
    return pd.DataFrame(rows)


def test_articles_get_scores_and_buckets(settings: Settings, engine: Engine, topics: Topics, kafka_bootstrap: str) -> None:
    produce(kafka_bootstrap, topics.news, news_stream())
    worker = RunningWorker(settings)
    try:
        wait_until(lambda: _count(engine, "article_scores") == 40, timeout_s=180, what="40 scored articles")
    finally:
        worker.stop()

    with engine.connect() as connection:
        labels = dict(connection.execute(sa.text(
            "SELECT a.headline, s.label FROM article_scores s JOIN articles a ON a.id = s.article_id")).all())
        scores = pd.DataFrame(connection.execute(sa.text(
            "SELECT a.published_at, s.p_negative, s.p_neutral, s.p_positive FROM article_scores s "
            "JOIN article_entities e ON e.article_id = s.article_id JOIN articles a ON a.id = s.article_id "
            "WHERE e.entity = 'ACME' ORDER BY a.published_at")).all(), columns=["published_at", "p_negative", "p_neutral", "p_positive"])
        stored = pd.DataFrame(connection.execute(sa.text(
            "SELECT extract(epoch FROM bucket_start)::bigint AS bucket, article_count, mean_p_negative, negative_share, "
            "mean_sentiment, emotion_index FROM buckets WHERE entity = 'ACME' AND width_seconds = :width ORDER BY bucket_start"),
            {"width": 300}).all(),
            columns=["bucket", "article_count", "mean_p_negative", "negative_share", "mean_sentiment", "emotion_index"])
    assert labels[NEGATIVE_HEADLINE] == "negative"
    assert labels[POSITIVE_HEADLINE] == "positive"
    with engine.connect() as connection:
        risk = dict(connection.execute(sa.text(
            "SELECT a.headline, s.risk_tags FROM article_scores s JOIN articles a ON a.id = s.article_id")).all())
        adverse = connection.execute(sa.text(
            "SELECT sum(adverse_count), sum(risk_count), sum(story_count), sum(article_count) FROM buckets "
            "WHERE entity = 'ACME' AND width_seconds = 300")).one()
    assert risk[RISK_HEADLINE] == risk[COPY_OF_RISK] == ["executive_legal"], "an arrest is a risk event, whatever its tone"
    assert risk[NEUTRAL_LINES[0] + " (0)"] == []
    assert adverse[3] == 40 and adverse[2] == 39, "the syndicated copy is no story of its own"
    # Risk-event stories: the arrest (once) and the profit warning; both adverse too.
    assert adverse[1] == 2 and adverse[0] >= 2

    scores["published_at"] = pd.to_datetime(scores["published_at"], utc=True)
    expected = direct_buckets(scores, 300, float(settings.emotion_half_life))
    assert list(stored["bucket"]) == list(expected["bucket"])
    for column in ["article_count", "mean_p_negative", "negative_share", "mean_sentiment", "emotion_index"]:
        assert np.allclose(stored[column].astype(float), expected[column].astype(float), atol=1e-9), column


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
