"""The query commands and SQL views on a real PostgreSQL: `finsent scores` (empty buckets filled),
`finsent entities` (both sort orders), `finsent articles` (newest first), their one-line errors, and
the views `entity_series` and `recent_alerts` against the tables they read."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pipeline.cli import main
from pipeline.series import SeriesConfig, update_series
from storage.migrate import alembic_config, head_revision, upgrade
from storage.models import Alert
from storage.writes import ArticleRecord, EntityMention, ScoreRecord, write_articles, write_scores
from tests.support.alert_history import bucket, write_history

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
MODEL = "m1"
CONFIG = SeriesConfig(widths=(300, 3600), half_life_seconds=3600.0)
LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class Story:
    id: str
    minute: int
    entity: str
    probabilities: tuple[float, float, float]
    """(p_negative, p_neutral, p_positive)"""

    @property
    def published_at(self) -> datetime:
        return T0 + timedelta(minutes=self.minute)

    @property
    def sentiment(self) -> float:
        return self.probabilities[2] - self.probabilities[0]


# AAPL has no article in the 14:05 bucket: the gap `finsent scores` must show with count 0.
STORIES = [
    Story("aapl-1", 1, "AAPL", (0.1, 0.3, 0.6)),
    Story("aapl-2", 2, "AAPL", (0.7, 0.2, 0.1)),
    Story("pfe-1", 3, "PFE", (0.9, 0.05, 0.05)),
    Story("aapl-3", 12, "AAPL", (0.2, 0.2, 0.6)),
    Story("pfe-2", 13, "PFE", (0.8, 0.1, 0.1)),
    Story("aapl-4", 16, "AAPL", (0.05, 0.15, 0.8)),
    Story("msft-1", 17, "MSFT", (0.1, 0.8, 0.1)),
]


def write_stories(engine: Engine, stories: Sequence[Story], model: str = MODEL) -> None:
    """Articles, mentions (the entity and MARKET), scores and buckets in one transaction, as the worker writes them."""
    records = [
        ArticleRecord(story.id, story.published_at, f"{story.entity} headline {story.id}", "", "wire", None, "en",
                      (EntityMention(story.entity, "tickers"), EntityMention("MARKET", "market")))
        for story in stories
    ]
    scores = [
        ScoreRecord(story.id, model, *story.probabilities, LABELS[story.probabilities.index(max(story.probabilities))], 1)
        for story in stories
    ]
    touched: dict[str, list[datetime]] = {}
    for story in stories:
        for entity in (story.entity, "MARKET"):
            touched.setdefault(entity, []).append(story.published_at)
    with engine.begin() as connection:
        write_articles(connection, records)
        write_scores(connection, scores)
        update_series(connection, touched, model, CONFIG)


def store_alert(engine: Engine, entity: str, state: str, last_bucket: datetime, evidence: dict[str, object] | None = None) -> int:
    with Session(engine) as session, session.begin():
        alert = Alert(
            dedup_key=f"{entity}/negative_spike/300s@{last_bucket.isoformat()}", fingerprint=f"{entity}/negative_spike/300s",
            entity=entity, rule="negative_spike", width_seconds=300, bucket_start=last_bucket, value=0.8, baseline=0.1,
            severity="major", state=state, evidence=evidence or {}, last_bucket_start=last_bucket, quiet_buckets=0,
            silenced=False, resolved_at=None if state == "firing" else last_bucket + timedelta(minutes=5),
        )
        session.add(alert)
        session.flush()
        return alert.id


@pytest.fixture
def stories(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("FINSENT_DATABASE_URL", database_url)
    monkeypatch.delenv("FINSENT_BUCKET_WIDTHS", raising=False)
    write_stories(engine, STORIES)
    return engine


def run(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[str, str]:
    code = main(list(arguments))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out, captured.err


def iso(minute: int) -> str:
    return (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%MZ")


# --- finsent scores --------------------------------------------------------------------------


def test_scores_json_fills_the_empty_bucket_with_count_0(stories: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = run(capsys, "series", "--entity", "aapl", "--width", "5m", "--from", iso(0), "--to", iso(20), "--format", "json")
    rows = json.loads(out)
    assert [row["bucket_start"][11:16] for row in rows] == ["14:00", "14:05", "14:10", "14:15"]
    assert [row["article_count"] for row in rows] == [2, 0, 1, 1]
    first, gap = rows[0], rows[1]
    assert first["mean_p_negative"] == pytest.approx(0.4) and first["negative_share"] == pytest.approx(0.5)
    assert first["mean_sentiment"] == pytest.approx((0.5 - 0.6) / 2) and first["model_version"] == MODEL
    assert gap["mean_p_negative"] is None and gap["negative_share"] is None and gap["mean_sentiment"] is None
    assert gap["emotion_index"] == pytest.approx(first["emotion_index"]), "the decayed index carries across an empty bucket"
    with stories.connect() as connection:
        stored = connection.execute(sa.text(
            "SELECT bucket_start, mean_sentiment, emotion_index FROM buckets"
            " WHERE entity = 'AAPL' AND width_seconds = 300 ORDER BY bucket_start")).all()
    shown = [value for row in rows if row["article_count"] for value in (row["mean_sentiment"], row["emotion_index"])]
    assert shown == pytest.approx([value for r in stored for value in (r.mean_sentiment, r.emotion_index)])
    assert err.startswith("AAPL: 4 buckets of 5m (3 with articles)")


def test_series_since_counts_back_from_the_newest_article(stories: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = run(capsys, "series", "--entity", "AAPL", "--since", "20m", "--format", "csv")
    assert run(capsys, "scores", "--entity", "AAPL", "--since", "20m", "--format", "csv") == (out, err), "the old name is an alias"
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(row["bucket_start"][11:16], row["article_count"]) for row in rows] == [
        ("14:00", "2"), ("14:05", "0"), ("14:10", "1"), ("14:15", "1")]
    assert rows[1]["mean_sentiment"] == "", "csv leaves an empty bucket's means empty"
    assert "ending at the newest article" in err and "2026-03-02T14:17:00Z" in err

    hourly, _ = run(capsys, "series", "--entity", "AAPL", "--width", "1h", "--since", "2h", "--format", "csv")
    assert [(row["bucket_start"][11:16], row["article_count"]) for row in csv.DictReader(io.StringIO(hourly))] == [
        ("13:00", "0"), ("14:00", "4")]


def test_scores_table_shows_the_empty_bucket(stories: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(capsys, "series", "--entity", "AAPL", "--from", iso(0), "--to", iso(20))
    header, *lines = out.splitlines()
    assert header.split() == ["bucket_start", "article_count", "mean_p_negative", "mean_p_neutral", "mean_p_positive",
                              "negative_share", "mean_sentiment", "emotion_index"]
    gap = next(line for line in lines if "14:05:00" in line).split()
    assert gap[2:] == ["0", "-", "-", "-", "-", "-", gap[-1]] and gap[-1] != "-"
    assert len(lines) == 4


# --- finsent entities ------------------------------------------------------------------------


def test_entities_most_active_first(stories: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    store_alert(stories, "PFE", "firing", T0)
    store_alert(stories, "AAPL", "resolved", T0)
    out, err = run(capsys, "entities", "--format", "json")
    rows = json.loads(out)
    assert [(row["entity"], row["articles"], row["firing_alerts"]) for row in rows] == [
        ("MARKET", 7, 0), ("AAPL", 4, 0), ("PFE", 2, 1), ("MSFT", 1, 0)]
    aapl = rows[1]
    assert aapl["mean_sentiment"] == pytest.approx((0.5 - 0.6 + 0.4 + 0.75) / 4)
    assert aapl["negative_share"] == pytest.approx(0.25)
    assert aapl["last_published_at"].startswith("2026-03-02T14:16:00")
    assert err.startswith("4 entities with articles") and "most articles first" in err


def test_entities_most_negative_first_with_limit(stories: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(capsys, "entities", "--sort", "negative", "--format", "csv")
    assert [row["entity"] for row in csv.DictReader(io.StringIO(out))] == ["PFE", "MARKET", "MSFT", "AAPL"]
    limited, _ = run(capsys, "entities", "--sort", "negative", "--limit", "2")
    header, *lines = limited.splitlines()
    assert header.split() == ["entity", "articles", "mean_sentiment", "negative_share", "last_published_at", "firing_alerts"]
    assert [line.split()[0] for line in lines] == ["PFE", "MARKET"]
    assert lines[0].split()[1:4] == ["2", "-0.775", "1.000"]


def test_entities_count_only_the_window(stories: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(capsys, "entities", "--from", iso(10), "--to", iso(15), "--format", "json")
    assert [(row["entity"], row["articles"]) for row in json.loads(out)] == [("MARKET", 2), ("PFE", 1), ("AAPL", 1)], \
        "ties: the more negative first"


# --- finsent articles ------------------------------------------------------------------------


def test_articles_newest_first_with_their_scores(stories: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(capsys, "articles", "--entity", "AAPL", "--since", "1h", "--format", "json")
    rows = json.loads(out)
    assert [row["id"] for row in rows] == ["aapl-4", "aapl-3", "aapl-2", "aapl-1"]
    by_id = {story.id: story for story in STORIES}
    assert [row["sentiment"] for row in rows] == pytest.approx([by_id[row["id"]].sentiment for row in rows])
    assert [row["label"] for row in rows] == ["positive", "positive", "negative", "positive"]
    assert rows[0]["published_at"].startswith("2026-03-02T14:16:00") and rows[0]["matched_by"] == "tickers"

    limited, err = run(capsys, "articles", "--entity", "AAPL", "--limit", "2", "--format", "csv")
    assert [row["id"] for row in csv.DictReader(io.StringIO(limited))] == ["aapl-4", "aapl-3"]
    assert "raise --limit" in err

    table, _ = run(capsys, "articles", "--entity", "PFE", "--since", "1h")
    header, *lines = table.splitlines()
    assert header.split()[:3] == ["published_at", "label", "sentiment"]
    assert len(lines) == 2 and "pfe-2" in lines[0] and lines[0].rstrip().endswith("PFE headline pfe-2") and "pfe-1" in lines[1]


def test_a_quiet_window_is_an_empty_answer_not_an_error(stories: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(capsys, "articles", "--entity", "MSFT", "--from", iso(0), "--to", iso(10))
    assert out.strip() == "no articles about MSFT in the window: widen --since"
    assert json.loads(run(capsys, "articles", "--entity", "MSFT", "--from", iso(0), "--to", iso(10), "--format", "json")[0]) == []


def test_an_article_scored_by_two_models_is_listed_once_with_its_newest_score(stories: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    with stories.begin() as connection:
        write_scores(connection, [ScoreRecord("aapl-1", "m2", 0.8, 0.1, 0.1, "negative", 1)])
    out, _ = run(capsys, "articles", "--entity", "AAPL", "--format", "json")
    rows = json.loads(out)
    assert [row["id"] for row in rows] == ["aapl-4", "aapl-3", "aapl-2", "aapl-1"]
    assert (rows[-1]["model_version"], rows[-1]["label"]) == ("m2", "negative")
    entities = {row["entity"]: row for row in json.loads(run(capsys, "entities", "--format", "json")[0])}
    assert entities["AAPL"]["articles"] == 4 and entities["AAPL"]["negative_share"] == pytest.approx(0.5)


# --- mistakes --------------------------------------------------------------------------------


@pytest.mark.parametrize(("arguments", "needles"), [
    (["series", "--entity", "AAPL", "--width", "7m"], ["--width 7m is not a stored bucket width", "5m, 1h", "FINSENT_BUCKET_WIDTHS"]),
    (["series", "--entity", "AAPL", "--width", "hourly"], ["--width 'hourly' is not a duration", "5m, 1h"]),
    (["series", "--entity", "AAPL", "--since", "6x"], ["--since '6x' is not a duration", "6h"]),
    (["entities", "--since", "0m"], ["--since '0m' is not a duration"]),
    (["articles", "--entity", "ZZZZ"], ["no articles about 'ZZZZ'", "finsent entities"]),
    (["series", "--entity", "NOPE"], ["no articles about 'NOPE'", "finsent entities"]),
    (["series", "--entity", "AAPL", "--from", "2026-03-02T15:00Z", "--to", "2026-03-02T14:00Z"],
     ["--to 2026-03-02T14:00:00Z must be after --from 2026-03-02T15:00:00Z", "swap"]),
    (["articles", "--entity", "AAPL", "--from", "2026-03-03"], ["--from 2026-03-03T00:00:00Z is not before the window's end"]),
    (["series", "--entity", "AAPL", "--from", "2026-03-02T14:00"], ["--from '2026-03-02T14:00' has no time zone", "Z"]),
    (["entities", "--to", "yesterday"], ["--to 'yesterday' is not a date or time", "ISO 8601"]),
    (["entities", "--since", "1h", "--from", "2026-03-02"], ["--since 1h and --from 2026-03-02", "give one of them"]),
    (["entities", "--limit", "0"], ["--limit '0' is not a positive whole number"]),
    (["articles", "--entity", "AAPL", "--limit", "many"], ["--limit 'many' is not a positive whole number"]),
])
def test_user_mistakes_get_one_line_and_exit_2(stories: Engine, capsys: pytest.CaptureFixture[str], arguments: list[str],
                                               needles: list[str]) -> None:
    assert main(arguments) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("finsent: error: "), captured.err
    for needle in needles:
        assert needle in lines[0]
    assert captured.out == ""


def test_width_choices_follow_the_configured_bucket_widths(stories: Engine, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENT_BUCKET_WIDTHS", "1m,15m,1d")
    assert main(["series", "--entity", "AAPL", "--width", "5m"]) == 2
    assert "choose one of 1m, 15m, 1d (FINSENT_BUCKET_WIDTHS)" in capsys.readouterr().err


# --- SQL views -------------------------------------------------------------------------------


MEASURES = "article_count, mean_p_negative, mean_p_neutral, mean_p_positive, negative_share, mean_sentiment, emotion_index, model_version"


def test_entity_series_rows_equal_the_buckets_rows(stories: Engine) -> None:
    key = "entity, width_seconds, bucket_start"
    with stories.connect() as connection:
        table = connection.execute(sa.text(f"SELECT {key}, {MEASURES} FROM buckets ORDER BY {key}")).all()
        view = connection.execute(sa.text(f"SELECT {key}, {MEASURES}, width, bucket_end FROM entity_series ORDER BY {key}")).all()
    assert len(table) == (3 + 1) + (2 + 1) + (1 + 1) + (3 + 1), "5m and 1h buckets with articles of AAPL, PFE, MSFT, MARKET"
    assert [tuple(row[:-2]) for row in view] == [tuple(row) for row in table]
    assert {(row.width_seconds, row.width) for row in view} == {(300, "5m"), (3600, "1h")}
    assert all(row.bucket_end == row.bucket_start + timedelta(seconds=row.width_seconds) for row in view)


@pytest.fixture
def alert_history(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("FINSENT_DATABASE_URL", database_url)
    write_history(engine, ["PFE", "AAPL"], 130, burst_entity="PFE", burst_at=100)
    return engine


def test_recent_alerts_shows_the_alerts_with_their_evidence(alert_history: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "backtest", "--from", bucket(48).isoformat(), "--to", bucket(130).isoformat(), "--write")
    old_resolved = store_alert(alert_history, "XOM", "resolved", bucket(0) - timedelta(days=8))
    old_firing = store_alert(alert_history, "JPM", "firing", bucket(0) - timedelta(days=8), {"z_score": "not a number"})
    with Session(alert_history) as session:
        alert = session.execute(sa.select(Alert).where(Alert.entity == "PFE")).scalar_one()
        alert_id, evidence, last_bucket = alert.id, alert.evidence, alert.last_bucket_start
    assert main(["ack", str(alert_id)]) == 0
    with alert_history.connect() as connection:
        rows = {row.id: row for row in connection.execute(sa.text("SELECT * FROM recent_alerts"))}
    assert set(rows) == {alert_id, old_firing}, "old resolved alerts drop out; firing ones stay however old"
    shown = rows[alert_id]
    assert (shown.entity, shown.rule, shown.width, shown.state) == ("PFE", "negative_news", "5m", "firing")
    assert shown.tail_probability == pytest.approx(evidence["tail_probability"]) and shown.tail_probability < 1e-4
    assert shown.observed_stories == evidence["observed"] >= 10 and shown.expected_stories == pytest.approx(evidence["expected"])
    assert shown.horizon == evidence["horizon"] and shown.article_count == evidence["article_count"]
    assert (shown.metric, shown.baseline_source) == (evidence["metric"], evidence["baseline_source"]) == ("adverse_stories", "prior")
    assert shown.z_score is None, "the count model has no z-score"
    assert shown.bucket_start == bucket(100) and shown.bucket_end == bucket(101)
    assert shown.last_seen_at == last_bucket + timedelta(minutes=5)
    assert shown.acknowledged and shown.acked_at is not None and shown.silenced is False
    assert rows[old_firing].z_score is None, "evidence that is not a number reads as NULL, not an error"
    assert old_resolved not in rows


def test_the_views_go_with_a_downgrade_and_come_back(empty_database: Engine) -> None:
    upgrade(empty_database)
    config = alembic_config()
    with empty_database.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    assert views(empty_database) == set()
    assert upgrade(empty_database) == head_revision()
    assert views(empty_database) == ALL_VIEWS


def test_a_database_never_migrated_answers_empty(empty_database: Engine, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENT_DATABASE_URL", empty_database.url.render_as_string(hide_password=False))
    out, err = run(capsys, "entities")
    assert out.strip() == "no entities with articles in the window: widen --since"
    assert "(up to now)" in err, "no article to anchor the window on"
    assert views(empty_database) == ALL_VIEWS


ALL_VIEWS = {"entity_series", "recent_alerts", "timesteps", "entity_timeseries"}
"""The two views, and the old names of the buckets table and its view (migration 0006) kept for existing SQL."""


def views(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_view_names())
