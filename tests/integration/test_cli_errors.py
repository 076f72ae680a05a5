"""`finsent` with a user mistake prints one clear line and exits non-zero, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_redaction import CLEAR_TEXTS, SECRET_SETTINGS


def run_finsent(*arguments: str, environment: dict[str, str] | None = None, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("FINSENT_")}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *arguments],
        env={**clean, **(environment or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *needles: str, after_retries: bool = False) -> None:
    """Exit 2 and one `finsent: error:` line naming the value; retry warnings may precede it when waiting."""
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if after_retries:
        assert all("level=warning" in line for line in lines[:-1]), result.stderr
        lines = lines[-1:]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("finsent: error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FINSENT_BATCH_SIZE", "abc"),
        ("FINSENT_KAFKA_BOOTSTRAP", "no-port-here"),
        ("FINSENT_DATABASE_URL", "mysql://root@localhost/news"),
        ("FINSENT_BUCKET_WIDTHS", "5 minutes"),
    ],
)
def test_bad_setting(variable: str, value: str) -> None:
    assert_one_clear_line(run_finsent("worker", environment={variable: value}), variable, repr(value))


def test_a_bad_setting_a_command_does_not_use_does_not_stop_it() -> None:
    """`scores` checks the database, intake and series settings only: its own mistake is the one reported."""
    result = run_finsent("series", "--entity", "PFE", "--since", "6x", environment={"FINSENT_ALERT_SMTP_PORT": "many"})
    assert_one_clear_line(result, "--since '6x' is not a duration")
    assert_one_clear_line(run_finsent("scheduler", "--once", environment={"FINSENT_ALERT_SMTP_PORT": "many"}),
                          "FINSENT_ALERT_SMTP_PORT", "'many'")


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert_one_clear_line(run_finsent("config", environment={"FINSENT_CONFIG": str(missing)}), "FINSENT_CONFIG", "not found")


def test_missing_entities_file(tmp_path: Path) -> None:
    missing = tmp_path / "entities.csv"
    assert_one_clear_line(run_finsent("worker", environment={"FINSENT_ENTITIES_FILE": str(missing)}), "FINSENT_ENTITIES_FILE", str(missing))


def test_missing_news_file(tmp_path: Path) -> None:
    assert_one_clear_line(run_finsent("produce", str(tmp_path / "news.jsonl")), "news.jsonl", "not found")


def test_unreachable_broker() -> None:
    result = run_finsent(
        "worker", environment={"FINSENT_KAFKA_BOOTSTRAP": "127.0.0.1:1", "FINSENT_KAFKA_CONNECT_TIMEOUT_MS": "1000"}
    )
    assert_one_clear_line(result, "127.0.0.1:1", "FINSENT_KAFKA_BOOTSTRAP")


def test_unreachable_database() -> None:
    result = run_finsent(
        "db", "upgrade",
        environment={"FINSENT_DATABASE_URL": "postgresql://finsent@127.0.0.1:1/finsent", "FINSENT_DATABASE_CONNECT_TIMEOUT_MS": "1000"},
    )
    assert_one_clear_line(result, "127.0.0.1:1", "FINSENT_DATABASE_URL", after_retries=True)


def test_config_lists_every_setting() -> None:
    result = run_finsent("config", environment={"FINSENT_BATCH_SIZE": "64"})
    assert result.returncode == 0, result.stderr
    assert "FINSENT_BATCH_SIZE=64" in result.stdout
    assert "FINSENT_KAFKA_BOOTSTRAP=localhost:9092" in result.stdout


def test_config_never_prints_a_secret() -> None:
    result = run_finsent("config", environment=SECRET_SETTINGS)
    assert result.returncode == 0, result.stderr
    printed = result.stdout + result.stderr
    assert not [text for text in CLEAR_TEXTS if text in printed], printed
    for line in (
        "FINSENT_DATABASE_URL=postgresql://finsent:***@db.example:5432/finsent?sslmode=require&password=***",
        "FINSENT_ALERT_WEBHOOK_URL=https://***@hooks.example/alerts?token=***&team=***",
        "FINSENT_ALERT_WEBHOOK_SECRET=<secret>",
        "FINSENT_ALERT_SLACK_WEBHOOK_URL=https://hooks.slack.com/***",
        "FINSENT_ALERT_SMTP_PASSWORD=<secret>",
        "FINSENT_ALERT_SMTP_USER=mailer",
    ):
        assert f"\n{line}\n" in result.stdout, line
    assert "SMTP login password (secret) (default: empty)" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("FINSENT_DATABASE_URL", "mysql://user:db-pass-1@host/db", "'mysql://user:***@host/db'"),
        ("FINSENT_DATABASE_URL", "user:db-pass-1@host/db", "'<secret>'"),
        ("FINSENT_ALERT_WEBHOOK_URL", "ftp://hook-user:hook-pass-3@hooks.example/a?token=hook-token-4",
         "'ftp://***@hooks.example/a?token=***'"),
        ("FINSENT_ALERT_SLACK_WEBHOOK_URL", "hooks.slack.com/services/T000/B000/slack-token-6", "'<secret>'"),
        ("FINSENT_ALERT_SLACK_WEBHOOK_URL", "ftp://hooks.slack.com/services/T000/B000/slack-token-6", "'ftp://hooks.slack.com/***'"),
    ],
)
def test_an_invalid_secret_setting_is_named_without_its_secret(variable: str, value: str, shown: str) -> None:
    result = run_finsent("config", environment={variable: value})
    assert_one_clear_line(result, f"{variable}={shown} is invalid: expected")
    assert not [text for text in CLEAR_TEXTS if text in result.stdout + result.stderr], result.stderr
