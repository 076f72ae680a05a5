"""Secrets print as <secret>; URLs keep what helps diagnose them and hide where credentials live."""

from __future__ import annotations

import logging

import pytest

from pipeline.config import Settings
from pipeline.redaction import Secret, redacted_database_url, redacted_secret_url, redacted_webhook_url

SECRET_SETTINGS = {
    "FINSENT_DATABASE_URL": "postgresql://finsent:db-pass-1@db.example:5432/finsent?sslmode=require&password=db-pass-2",
    "FINSENT_ALERT_WEBHOOK_URL": "https://hook-user:hook-pass-3@hooks.example/alerts?token=hook-token-4&team=risk",
    "FINSENT_ALERT_WEBHOOK_SECRET": "hmac-key-5",
    "FINSENT_ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/slack-token-6",
    "FINSENT_ALERT_SMTP_HOST": "smtp.example",
    "FINSENT_ALERT_SMTP_USER": "mailer",
    "FINSENT_ALERT_SMTP_PASSWORD": "smtp-pass-7",
    "FINSENT_ALERT_EMAIL_TO": "risk@example.com",
}
CLEAR_TEXTS = ("db-pass-1", "db-pass-2", "hook-user", "hook-pass-3", "hook-token-4", "hmac-key-5", "slack-token-6",
               "T000", "smtp-pass-7")


def test_a_secret_prints_as_secret_and_reveals_its_value() -> None:
    secret = Secret("hunter2")
    assert str(secret) == repr(secret) == f"{secret}" == "<secret>"
    assert secret.reveal() == "hunter2"
    assert secret and not Secret("")
    assert str(Secret("")) == "" and repr(Secret("")) == "''"
    assert secret == Secret("hunter2") and secret != Secret("other") and secret != "hunter2"
    assert len({Secret("a"), Secret("a")}) == 1


def test_a_logged_secret_stays_hidden(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("login %s", Secret("hunter2"), extra={"kv": {"password": Secret("hunter2")}})
    assert "hunter2" not in caplog.text and "<secret>" in caplog.text


def test_settings_repr_hides_every_secret() -> None:
    settings = Settings.load(SECRET_SETTINGS)
    shown = repr(settings)
    assert not [text for text in CLEAR_TEXTS if text in shown], shown
    assert "database_url='postgresql://finsent:***@db.example:5432/finsent?sslmode=require&password=***'" in shown
    assert "alert_webhook_url='https://***@hooks.example/alerts?token=***&team=***'" in shown
    assert "alert_slack_webhook_url='https://hooks.slack.com/***'" in shown
    assert "alert_webhook_secret='<secret>'" in shown and "alert_smtp_password='<secret>'" in shown
    assert "alert_smtp_user='mailer'" in shown and "kafka_bootstrap='localhost:9092'" in shown


def test_secret_fields_reveal_what_was_set() -> None:
    settings = Settings.load(SECRET_SETTINGS)
    assert settings.database_url.reveal() == SECRET_SETTINGS["FINSENT_DATABASE_URL"]
    assert settings.alert_webhook_url == SECRET_SETTINGS["FINSENT_ALERT_WEBHOOK_URL"]
    assert settings.alert_webhook_secret.reveal() == "hmac-key-5"
    assert settings.alert_slack_webhook_url.reveal() == SECRET_SETTINGS["FINSENT_ALERT_SLACK_WEBHOOK_URL"]
    assert settings.alert_smtp_password.reveal() == "smtp-pass-7"


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://user:pw@host:5432/db", "postgresql://user:***@host:5432/db"),
    ("postgresql://user@host/db", "postgresql://user@host/db"),
    ("postgresql://postgres:@/finsent?host=/tmp/pg", "postgresql://postgres:@/finsent?host=/tmp/pg"),
    ("mysql://root:p%40ss@localhost/news", "mysql://root:***@localhost/news"),
    ("postgresql://u:p@ss@host/db", "postgresql://u:***@host/db"),
    ("not a url user:pw@host", "<secret>"),
    ("http://[::1/x", "<secret>"),
])
def test_database_url_shows_everything_but_the_password(url: str, shown: str) -> None:
    assert redacted_database_url(url) == shown


def test_webhook_and_slack_urls_hide_userinfo_query_and_token_path() -> None:
    assert redacted_webhook_url("https://hooks.example/a/b?token=t&x=") == "https://hooks.example/a/b?token=***&x="
    assert redacted_webhook_url("https://u:p@hooks.example:8443/a#frag") == "https://***@hooks.example:8443/a"
    assert redacted_secret_url("https://hooks.slack.com/services/T/B/xyz?x=1") == "https://hooks.slack.com/***"
    assert redacted_secret_url("hooks.slack.com/services/T/B/xyz") == "<secret>"
