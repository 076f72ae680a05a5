"""POST a body with the standard library and sort failures into retryable and permanent ones.

2xx: accepted. 408, 429, 5xx, connection errors and timeouts: retryable (the receiver may recover).
Any other status, redirects included, is permanent: retrying would get the same answer, so the
delivery fails at once and the error names the status. Redirects are not followed, because urllib
would turn a redirected POST into a GET without the body.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from email.message import Message
from typing import IO
from urllib.parse import urlsplit

from pipeline.alerting.channels.channel import DeliveryFailed

USER_AGENT = "finsent-alerts/1"
_ERROR_BODY_CHARS = 200


def is_retryable_status(status: int) -> bool:
    return status in (408, 429) or 500 <= status <= 599


def redacted_url(url: str) -> str:
    """scheme://host/… only: webhook paths and queries often carry the secret (Slack's do)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def retry_after_seconds(headers: Message | None) -> float | None:
    """The Retry-After header in seconds, when it is given in seconds (HTTP dates are ignored)."""
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Message, newurl: str
    ) -> urllib.request.Request | None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
    """POST and return the 2xx status; raise DeliveryFailed for anything else."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"User-Agent": USER_AGENT, **headers}
    )
    where = redacted_url(url)
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
        detail = _error_body(error)
        if 300 <= status <= 399:
            raise DeliveryFailed(
                f"{where} answered HTTP {status} redirecting to {error.headers.get('Location')!r}: "
                "set the URL to the final address", permanent=True,
            ) from None
        raise DeliveryFailed(
            f"{where} answered HTTP {status}{detail}", permanent=not is_retryable_status(status),
            retry_after_s=retry_after_seconds(error.headers),
        ) from None
    except urllib.error.URLError as error:
        raise DeliveryFailed(f"cannot reach {where}: {error.reason}", permanent=False) from None
    except TimeoutError:
        raise DeliveryFailed(f"{where} did not answer within {timeout_s:g}s", permanent=False) from None
    except OSError as error:
        raise DeliveryFailed(f"connection to {where} failed: {error}", permanent=False) from None
    if not 200 <= status <= 299:
        raise DeliveryFailed(f"{where} answered HTTP {status}", permanent=not is_retryable_status(status))
    return status


def _error_body(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read(_ERROR_BODY_CHARS).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return f": {text}" if text else ""
