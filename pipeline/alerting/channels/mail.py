"""E-mail over SMTP: subject from the notice title, plain-text body from its text.

Headers tie re-sends and episodes together: `Message-ID` is derived from the idempotency key (a
re-send of the same event carries the same id, so mail systems can drop the copy),
`X-Finsent-Idempotency-Key` carries the key itself, and `References` is derived from the alert's
dedup key, so every event of one alert episode lands in one mail thread.

SMTP replies 5xx (rejected sender, recipients, login) are permanent; 4xx replies, dropped
connections and timeouts are retried. When the server accepts some recipients and refuses others
the message counts as sent (a retry would repeat it to the accepted ones) and the refusals are logged.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

from pipeline.alerting.channels.channel import DeliveryFailed
from pipeline.alerting.notice import AlertNotice

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "X-Finsent-Idempotency-Key"
# Headers unfolded up to RFC 5322's hard limit: the standard library folds a subject of 70-78
# characters onto a continuation line of its own, which readers then show with a leading space.
_POLICY = SMTP.clone(max_line_length=998)


def _message_id(key: str, domain: str) -> str:
    return f"<{hashlib.sha256(key.encode('utf-8')).hexdigest()[:40]}@{domain}>"


def alert_email(notice: AlertNotice, sender: str, recipients: Sequence[str]) -> EmailMessage:
    domain = sender.rpartition("@")[2] or "finsent"
    message = EmailMessage(policy=_POLICY)
    message["Subject"] = notice.title()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = _message_id(notice.idempotency_key, domain)
    message["References"] = _message_id(notice.dedup_key, domain)
    message[IDEMPOTENCY_HEADER] = notice.idempotency_key
    message.set_content(notice.text())
    return message


class EmailChannel:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        starttls: bool = True,
        user: str = "",
        password: str = "",
        timeout_s: float = 10.0,
    ) -> None:
        if not recipients:
            raise ValueError("the e-mail channel needs at least one recipient: set FINSENT_ALERT_EMAIL_TO")
        self._host = host
        self._port = port
        self._sender = sender
        self._recipients = tuple(recipients)
        self._starttls = starttls
        self._user = user
        self._password = password
        self._timeout_s = timeout_s

    @property
    def name(self) -> str:
        return "email"

    def send(self, notice: AlertNotice) -> None:
        message = alert_email(notice, self._sender, self._recipients)
        where = f"SMTP server {self._host}:{self._port}"
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout_s) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._user:
                    smtp.login(self._user, self._password)
                refused = smtp.send_message(message, from_addr=self._sender, to_addrs=list(self._recipients))
        except smtplib.SMTPNotSupportedError as error:
            raise DeliveryFailed(
                f"{where} does not support what was asked ({error}): set FINSENT_ALERT_SMTP_STARTTLS=false "
                "for a server without STARTTLS, or unset FINSENT_ALERT_SMTP_USER for one without login",
                permanent=True,
            ) from None
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            raise DeliveryFailed(
                f"{where} refused every recipient: {_refusals(error.recipients)}",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except smtplib.SMTPResponseException as error:
            text = error.smtp_error.decode("utf-8", "replace") if isinstance(error.smtp_error, bytes) else str(error.smtp_error)
            raise DeliveryFailed(f"{where} answered {error.smtp_code} {text}", permanent=error.smtp_code >= 500) from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(f"{where}: {type(error).__name__}: {error}", permanent=False) from None
        if refused:
            log.warning(
                "email_recipients_refused",
                extra={"kv": {"idempotency_key": notice.idempotency_key, "refused": _refusals(refused)}},
            )

    def close(self) -> None:
        """One connection per send: nothing held between sends."""


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{address} {code} {reply.decode('utf-8', 'replace') if isinstance(reply, bytes) else reply}"
        for address, (code, reply) in refused.items()
    )
