"""The Alertmanager channel's pure parts: the posted alert, when a firing alert is due again, how errors sort."""

from __future__ import annotations

import base64
import socket
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from pipeline.alerting.alertmanager_resend import due_for_resend
from pipeline.alerting.channels.alertmanager import (
    ALERTNAME,
    AlertmanagerChannel,
    alert_labels,
    alertmanager_alert,
    alertname,
    ended,
    split_credentials,
)
from pipeline.alerting.channels.channel import DeliveryFailed
from pipeline.alerting.channels.http_post import is_retryable_status
from pipeline.alerting.notice import AlertNotice
from pipeline.alerting.scheduler import channels_from_settings
from pipeline.config import Settings
from pipeline.errors import ConfigError

BUCKET = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
FIRED_AT = datetime(2026, 3, 2, 14, 7, tzinfo=timezone.utc)
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
LEASE = timedelta(minutes=4)
MOMENT: dict[str, Any] = {
    "metric": "adverse_stories", "observed": 12.0, "expected": 0.4, "horizon": "6h", "tail_probability": 2e-06,
    "top_negative": [
        {"id": "art-1", "headline": "Pfizer recalls batch and halts plant", "p_negative": 0.97},
        {"id": "art-2", "headline": "Regulator opens probe into Pfizer", "p_negative": 0.91},
    ],
}


def notice(event: str = "fired", severity: str = "major", resolved_at: datetime | None = None) -> AlertNotice:
    return AlertNotice(
        alert_id=7, dedup_key=f"PFE/negative_news/300s@{BUCKET.isoformat()}", event=event,
        event_label=f"{event}@{BUCKET.isoformat()}", entity="PFE", rule="negative_news", width_seconds=300,
        bucket_start=BUCKET, first_bucket_start=BUCKET, severity=severity, value=12.0, baseline=0.4,
        evidence={**MOMENT, "horizon": "1d", "first": MOMENT}, fired_at=FIRED_AT, resolved_at=resolved_at, acked=False,
    )


def test_a_firing_alert_carries_its_labels_evidence_and_ends_one_lease_ahead() -> None:
    alert = alertmanager_alert(notice(), NOW, LEASE)
    assert alert["labels"] == {
        "alertname": ALERTNAME, "entity": "PFE", "rule": "negative_news", "severity": "major",
        "horizon": "6h", "width": "300s", "source": "finsent",
    }, "horizon is the firing moment's, so the label set stays put while the latest evidence moves"
    assert alert["startsAt"] == "2026-03-02T14:07:00Z"
    assert alert["endsAt"] == "2026-03-02T15:04:00Z"
    annotations = alert["annotations"]
    assert "\n" not in annotations["summary"] and annotations["summary"].startswith("PFE negative_news major")
    assert "12 vs baseline 0.4" in annotations["summary"]
    assert annotations["evidence"].splitlines() == [
        "adverse_stories 12 vs baseline 0.4 over 1d",
        "- Pfizer recalls batch and halts plant (p_negative 0.97)",
        "- Regulator opens probe into Pfizer (p_negative 0.91)",
    ]
    assert annotations["description"] == notice().text()
    assert all(isinstance(value, str) for value in annotations.values()), "Alertmanager takes string annotations only"


def test_each_rule_has_its_own_alertname() -> None:
    assert ALERTNAME == alertname("negative_news") == "FinsentNegativeNews"
    assert alertname("market_negative_news") == "FinsentMarketNegativeNews"
    market = replace(notice(), rule="market_negative_news", entity="MARKET")
    assert alert_labels(market)["alertname"] == "FinsentMarketNegativeNews"


def test_a_resolved_alert_ends_at_its_resolved_time_but_never_before_it_started() -> None:
    resolved = alertmanager_alert(notice("resolved", resolved_at=NOW - timedelta(minutes=10)), NOW, LEASE)
    assert resolved["endsAt"] == "2026-03-02T14:50:00Z"
    assert resolved["labels"] == alert_labels(notice()), "the same labels end the same Alertmanager alert"
    replayed = alertmanager_alert(notice("resolved", resolved_at=FIRED_AT - timedelta(days=1)), NOW, LEASE)
    assert replayed["endsAt"] == replayed["startsAt"], "a replay resolves at an event time before fired_at"


def test_an_alert_under_old_labels_is_ended_now() -> None:
    alert = alertmanager_alert(notice(severity="critical"), NOW, LEASE)
    old = alert_labels(notice(severity="major"))
    stale = ended(alert, old, NOW)
    assert stale["labels"] == old and stale["endsAt"] == "2026-03-02T15:00:00Z"
    assert stale["startsAt"] == alert["startsAt"] and alert["labels"]["severity"] == "critical"


def test_firing_alerts_are_due_when_never_posted_or_posted_an_interval_ago() -> None:
    interval = timedelta(minutes=1)
    posted = {1: NOW - timedelta(seconds=59), 2: NOW - interval, 3: NOW - timedelta(hours=1), 9: NOW}
    assert due_for_resend([1, 2, 3, 4], posted, NOW, interval) == [2, 3, 4], \
        "1 is not due yet; 2 and 3 are; 4 was never posted (a restart): due at once; 9 no longer fires"
    assert due_for_resend([], posted, NOW, interval) == []


@pytest.mark.parametrize(("status", "retryable"), [
    (400, False), (401, False), (403, False), (404, False), (422, False), (301, False),
    (408, True), (429, True), (500, True), (502, True), (503, True),
])
def test_client_errors_are_permanent_except_throttling_and_server_errors_are_retried(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


def test_an_unreachable_alertmanager_is_retried_and_its_credentials_stay_out_of_the_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = AlertmanagerChannel(f"http://am-user:am-pass-1@127.0.0.1:{port}", resend_s=60, timeout_s=2)
    with pytest.raises(DeliveryFailed) as failure:
        channel.send(notice())
    assert failure.value.permanent is False
    assert "am-pass-1" not in failure.value.reason and "am-user" not in failure.value.reason
    assert channel.last_posted() == {}, "a post that failed does not count as posted"


def test_userinfo_becomes_basic_auth() -> None:
    url, headers = split_credentials("https://am%40user:p%3Ass@am.example:9093/prefix")
    assert url == "https://am.example:9093/prefix"
    assert base64.b64decode(headers["Authorization"].removeprefix("Basic ")) == b"am@user:p:ss"
    assert split_credentials("http://am:9093") == ("http://am:9093", {})


def test_alertmanager_settings_validate_the_url_and_redact_it() -> None:
    settings = Settings.load({"FINSENT_ALERTMANAGER_URL": "https://u:secret-pass@am.example:9093", "FINSENT_ALERTMANAGER_RESEND": "2s"})
    assert settings.alertmanager_resend == 2
    assert settings.alertmanager_url.reveal() == "https://u:secret-pass@am.example:9093"
    assert "secret-pass" not in repr(settings)
    assert Settings.load({}).alertmanager_resend == 60 and not Settings.load({}).alertmanager_url
    with pytest.raises(ConfigError, match="FINSENT_ALERTMANAGER_URL"):
        Settings.load({"FINSENT_ALERTMANAGER_URL": "am.example:9093"})



def test_the_channel_is_on_with_its_url_and_routable_by_name() -> None:
    settings = Settings.load({"FINSENT_ALERTMANAGER_URL": "http://am:9093", "FINSENT_ALERTMANAGER_RESEND": "2s",
                              "FINSENT_ALERT_KAFKA": "false", "FINSENT_ALERT_ROUTES": "alertmanager:PFE:major"})
    channel = channels_from_settings(settings)["alertmanager"]
    assert isinstance(channel, AlertmanagerChannel) and channel.name == "alertmanager"
    assert (channel.resend, channel.lease) == (timedelta(seconds=2), timedelta(seconds=8))
    assert "alertmanager" not in channels_from_settings(Settings.load({"FINSENT_ALERT_KAFKA": "false"}))
