"""The Alertmanager channel against a real `prometheus-alertmanager`, driven by `finsent scheduler` over
the suite's PostgreSQL: the alert arrives, outlives its first lease by being re-posted, and ends
when finsent resolves it."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from consumers.embedded_broker import free_loopback_port
from pipeline.alerting.channels.alertmanager import ALERTNAME, AlertmanagerChannel
from pipeline.alerting.channels.channel import DeliveryFailed
from pipeline.alerting.notice import AlertNotice
from pipeline.series import bucket_start
from storage.models import Alert, AlertEvent, Delivery
from tests.support.alert_history import WIDTH, Story, bucket, write_history, write_stories
from tests.support.broker_io import wait_until
from tests.support.http_receiver import HttpEndpoint
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
RESEND = "2s"
CONFIG = """\
route:
  receiver: blackhole
  group_by: [entity]
receivers:
  - name: blackhole
"""
HISTORY = 100
BURST = HISTORY - 4
ENTITIES = ["PFE", "AAPL"]


class RunningAlertmanager:
    def __init__(self, directory: Path) -> None:
        (directory / "am.yml").write_text(CONFIG)
        self.url = f"http://127.0.0.1:{free_loopback_port()}"
        self.log_path = directory / "alertmanager.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [ALERTMANAGER, f"--config.file={directory / 'am.yml'}", f"--storage.path={directory}",
                 f"--web.listen-address={self.url.removeprefix('http://')}", "--cluster.listen-address="],
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(self.ready, timeout_s=60, what=f"Alertmanager ready; its log:\n{self.log_text()[-2000:]}")

    def ready(self) -> bool:
        assert self.process.poll() is None, f"Alertmanager exited: {self.log_text()[-2000:]}"
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: the alerts Alertmanager holds that have not ended."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=10) as response:
            return list(json.load(response))

    def finsent_alerts(self, entity: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts() if a["labels"].get("alertname") == ALERTNAME and a["labels"].get("entity") == entity]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[RunningAlertmanager]:
    if shutil.which(ALERTMANAGER) is None:
        pytest.skip(f"{ALERTMANAGER} is not installed (Debian package prometheus-alertmanager; "
                    "`python -m tests.support.system_packages` installs it as root)")
    directory = tmp_path / "alertmanager"
    directory.mkdir()
    running = RunningAlertmanager(directory)
    yield running
    running.stop()


def just_ingested(engine: Engine) -> None:
    """Every article ingested now: the stream counts as live, so detection judges only up to its newest
    article (the end of the history written so far), not up to the wall clock."""
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE articles SET ingested_at = now()")


def quiet_news(start: datetime, first: int, last: int) -> list[Story]:
    return [Story(f"{entity}-later-{k}", entity, bucket(k, start) + timedelta(seconds=5 + n), f"{entity} routine note {k}",
                  adverse=False) for k in range(first, last + 1) for n, entity in enumerate(ENTITIES)]


def resolved_delivery_sent(engine: Engine) -> bool:
    with Session(engine) as session:
        return session.scalar(select(Delivery.id).where(
            Delivery.channel == "alertmanager", Delivery.event.startswith("resolved@"), Delivery.status == "sent")) is not None


def test_the_scheduler_keeps_a_firing_alert_active_in_alertmanager_and_ends_it_on_resolution(
    alertmanager: RunningAlertmanager, engine: Engine, database_url: str, tmp_path: Path,
) -> None:
    start = bucket_start(datetime.now(timezone.utc), WIDTH) - timedelta(seconds=WIDTH * 200)
    write_history(engine, ENTITIES, HISTORY, burst_entity="PFE", burst_at=BURST, start=start)
    just_ingested(engine)
    environment = {
        "FINSENT_DATABASE_URL": database_url,
        "FINSENT_ALERT_INTERVAL": "1s",
        "FINSENT_ALERT_KAFKA": "false",
        "FINSENT_ALERT_HORIZONS": "1h",  # the burst leaves its only horizon 12 buckets later: then it resolves
        "FINSENT_ALERTMANAGER_URL": alertmanager.url,
        "FINSENT_ALERTMANAGER_RESEND": RESEND,
        "FINSENT_LOG_LEVEL": "INFO",
    }
    scheduler = WorkerProcess(environment, tmp_path / "scheduler.log", command="scheduler").start()
    try:
        wait_until(lambda: alertmanager.finsent_alerts("PFE"), timeout_s=120,
                   what=f"the alert in Alertmanager; scheduler log:\n{scheduler.log_text()[-3000:]}")
        [arrived] = alertmanager.finsent_alerts("PFE")
        assert arrived["labels"] == {"alertname": ALERTNAME, "entity": "PFE", "rule": "negative_news",
                                     "severity": arrived["labels"]["severity"], "horizon": "1h", "width": "300s",
                                     "source": "finsent"}
        assert arrived["status"]["state"] == "active"
        assert "PFE plunges after recall" in arrived["annotations"]["evidence"]
        assert "\n" not in arrived["annotations"]["summary"] and arrived["annotations"]["description"]
        first_lease_ends = datetime.fromisoformat(arrived["endsAt"])

        # Past the first post's endsAt, Alertmanager would have resolved it but for the re-posts.
        wait_until(lambda: datetime.now(timezone.utc) > first_lease_ends + timedelta(seconds=1), timeout_s=120,
                   what="the first lease to run out")
        listed = alertmanager.finsent_alerts("PFE")
        assert len(listed) == 1, "the alert lapsed when its first lease ran out: it was not re-posted"
        still = listed[0]
        assert still["status"]["state"] == "active"
        assert datetime.fromisoformat(still["endsAt"]) > first_lease_ends, "re-posted with a later endsAt"
        assert still["startsAt"] == arrived["startsAt"], "the same alert, not a new one"
        assert "event=alertmanager_resend" in scheduler.log_text()

        # Quiet news after the burst: the scheduler's next passes resolve the alert and post its end.
        write_stories(engine, quiet_news(start, HISTORY, HISTORY + 24))
        just_ingested(engine)
        wait_until(lambda: resolved_delivery_sent(engine), timeout_s=120,
                   what=f"the resolution posted; scheduler log:\n{scheduler.log_text()[-3000:]}")
        wait_until(lambda: not alertmanager.finsent_alerts("PFE"), timeout_s=60, what="Alertmanager to end the alert")
        passes = scheduler.log_text().count("event=detection_pass")
        wait_until(lambda: scheduler.log_text().count("event=detection_pass") >= passes + 3, timeout_s=60,
                   what="more scheduler ticks after the resolution")
        assert not alertmanager.finsent_alerts("PFE"), "a resend revived the resolved alert"
    finally:
        scheduler.kill()
    with Session(engine) as session:
        assert [(a.entity, a.state) for a in session.scalars(select(Alert))] == [("PFE", "resolved")]
        outbox = session.execute(select(Delivery.channel, Delivery.event, Delivery.status)
                                 .where(Delivery.channel == "alertmanager").order_by(Delivery.id)).all()
    assert [(event.split("@")[0], status) for _, event, status in outbox if not event.startswith("repeated")] == [
        ("fired", "sent"), ("resolved", "sent")], "each event through the outbox once; resends stay out of it"


def a_notice() -> AlertNotice:
    """A notice built from rows as the lifecycle writes them (no database needed to post one)."""
    moment = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
    alert = Alert(id=1, dedup_key="PFE/negative_news/300s@x", fingerprint="PFE/negative_news/300s", entity="PFE",
                  rule="negative_news", width_seconds=300, bucket_start=moment, value=12.0, baseline=0.4,
                  severity="major", state="firing", evidence={"horizon": "1h"}, fired_at=moment,
                  last_bucket_start=moment, quiet_buckets=0, silenced=False)
    event = AlertEvent(id=1, alert_id=1, kind="fired", bucket_start=moment, severity="major", value=12.0)
    return AlertNotice.from_rows(alert, event)


def test_alertmanager_errors_sort_into_permanent_and_retried(alertmanager: RunningAlertmanager) -> None:
    notice = a_notice()
    with pytest.raises(DeliveryFailed) as wrong_path:
        AlertmanagerChannel(f"{alertmanager.url}/no-such-prefix", resend_s=60).send(notice)
    assert wrong_path.value.permanent and "404" in wrong_path.value.reason

    throttling = HttpEndpoint(lambda _: (429, {"Retry-After": "7"}))
    failing = HttpEndpoint(lambda _: (503, {}))
    try:
        with pytest.raises(DeliveryFailed) as throttled:
            AlertmanagerChannel(throttling.url, resend_s=60).send(notice)
        with pytest.raises(DeliveryFailed) as down:
            AlertmanagerChannel(failing.url, resend_s=60).send(notice)
    finally:
        throttling.close()
        failing.close()
    assert not throttled.value.permanent and throttled.value.retry_after_s == 7.0
    assert not down.value.permanent and "503" in down.value.reason
    assert throttling.requests[0].path == "/hooks/alerts/api/v2/alerts"

    channel = AlertmanagerChannel(alertmanager.url, resend_s=60)
    channel.send(notice)
    assert [a["labels"]["entity"] for a in alertmanager.alerts()] == ["PFE"], "the same notice is accepted by the real one"
    assert set(channel.last_posted()) == {1}
