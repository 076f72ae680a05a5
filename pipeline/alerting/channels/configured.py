"""The channels this process can deliver to, built from the settings (FINSENT_ALERT_*)."""

from __future__ import annotations

from pipeline.alerting.channels.channel import Channel
from pipeline.alerting.channels.kafka_topic import KafkaChannel
from pipeline.alerting.channels.log_line import LogChannel
from pipeline.alerting.channels.mail import EmailChannel
from pipeline.alerting.channels.slack import SlackChannel
from pipeline.alerting.channels.webhook import WebhookChannel
from pipeline.config import Settings
from pipeline.kafka_settings import kafka_options

CHANNEL_SWITCHES: dict[str, str] = {
    "log": "always on",
    "webhook": "FINSENT_ALERT_WEBHOOK_URL",
    "slack": "FINSENT_ALERT_SLACK_WEBHOOK_URL",
    "email": "FINSENT_ALERT_SMTP_HOST and FINSENT_ALERT_EMAIL_TO",
    "kafka": "FINSENT_ALERT_KAFKA=true",
}
"""What turns each channel on, for error messages about a channel that is off."""


def channels_from_settings(settings: Settings) -> dict[str, Channel]:
    """log always; webhook and slack when their URL is set; email with an SMTP host; kafka when enabled."""
    timeout_s = float(settings.delivery_timeout)
    channels: dict[str, Channel] = {"log": LogChannel()}
    if settings.alert_webhook_url:
        channels["webhook"] = WebhookChannel(settings.alert_webhook_url, settings.alert_webhook_secret.reveal(), timeout_s)
    if settings.alert_slack_webhook_url:
        channels["slack"] = SlackChannel(settings.alert_slack_webhook_url.reveal(), timeout_s)
    if settings.alert_smtp_host:
        channels["email"] = EmailChannel(
            host=settings.alert_smtp_host,
            port=settings.alert_smtp_port,
            sender=settings.alert_email_from,
            recipients=settings.alert_email_to,
            starttls=settings.alert_smtp_starttls,
            user=settings.alert_smtp_user,
            password=settings.alert_smtp_password.reveal(),
            timeout_s=timeout_s,
        )
    if settings.alert_kafka:
        channels["kafka"] = KafkaChannel(
            kafka_options(settings, client_id="finsent-alerts"), settings.topic_alerts, timeout_s
        )
    return channels
