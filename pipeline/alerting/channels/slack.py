"""Slack-compatible incoming webhook: POST `{"text": ...}` in mrkdwn; same retry rules as the webhook.

Works with Slack, Mattermost and Rocket.Chat incoming webhooks. The URL is the secret, so errors
show its host only.
"""

from __future__ import annotations

import json

from pipeline.alerting.channels.http_post import post
from pipeline.alerting.notice import AlertNotice


def slack_escape(text: str) -> str:
    """Slack's three control characters; everything else passes through as mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notice: AlertNotice) -> dict[str, str]:
    return {"text": f"*{slack_escape(notice.title())}*\n{slack_escape(notice.text())}"}


class SlackChannel:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self._url = url
        self._timeout_s = timeout_s

    @property
    def name(self) -> str:
        return "slack"

    def send(self, notice: AlertNotice) -> None:
        body = json.dumps(slack_payload(notice), ensure_ascii=False).encode("utf-8")
        post(self._url, body, {"Content-Type": "application/json; charset=utf-8"}, self._timeout_s)

    def close(self) -> None:
        """Nothing held between sends."""
