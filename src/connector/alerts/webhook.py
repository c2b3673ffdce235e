"""The alert message and the one client that POSTs it to ``ALERT_WEBHOOK_URL``.

``slack`` sends ``{"text": …}``, which Slack's incoming webhooks (and
Mattermost's, Rocket.Chat's and most chat tools') take; ``json`` sends the
whole ``AlertMessage``, the same text included. The URL is a ``Secret``: a
Slack webhook URL is its own credential, so no log line, error or repr shows
it. A message the webhook does not take (unreachable, timed out, not 2xx) is
one warning line naming the condition and why, never an exception.
"""

from __future__ import annotations

import logging
from typing import Literal

import httpx
import msgspec

from connector.settings import Secret

__all__ = ["TIMEOUT_S", "AlertMessage", "Webhook"]

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0  # an alert is small: a receiver slower than this is treated as down
_encode = msgspec.json.Encoder().encode


class AlertMessage(msgspec.Struct, frozen=True, kw_only=True):
    """What one alert says: counts, names and ids only, never a record's values."""

    text: str
    key: str  # "<condition>:<subject>", e.g. "dead_letters:spotler"
    condition: str
    subject: str
    state: Literal["firing", "recovered"]
    reminder: bool  # firing, and already announced earlier in this episode
    value: float
    threshold: float
    since: float  # Unix seconds: when the condition was first seen holding
    at: float  # Unix seconds: when this message was decided


class Webhook:
    """POSTs alert messages; ``transport`` is the seam for tests."""

    def __init__(self, url: Secret, *, format: Literal["slack", "json"] = "slack", timeout_s: float = TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._url = url
        self.format = format
        self.timeout_s = timeout_s
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False)

    def body(self, message: AlertMessage) -> bytes:
        return _encode({"text": message.text} if self.format == "slack" else message)

    def post(self, message: AlertMessage) -> bool:
        """Send one message; False (and one warning line) when the webhook did not take it."""
        try:
            response = self._client.post(self._url.reveal(), content=self.body(message),
                                         headers={"Content-Type": "application/json"})
        except httpx.TimeoutException as exc:
            why = f"timed out after {self.timeout_s:g}s ({type(exc).__name__})"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # The exception's text may hold the URL: only its kind is shown.
            why = f"is unreachable ({type(exc).__name__})"
        else:
            if response.is_success:
                return True
            why = f"answered HTTP {response.status_code}"
        log.warning("alert %s (%s) not delivered: the webhook %s", message.key, message.state, why)
        return False

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"Webhook(url={self._url!r}, format={self.format!r})"
