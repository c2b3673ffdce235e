"""Evaluate the alert conditions and send what the debounce lets through, off the poll's thread.

``evaluate`` is one pass, synchronous (the tests call it). ``kick`` asks the
monitor's own daemon thread for a pass and returns at once: the poll loop calls
it after each poll, so a slow or dead webhook (or a Redis hiccup) never holds a
poll up. Kicks that arrive while a pass runs fold into one more pass. ``close``
lets a requested pass finish, waiting at most ``wait_s`` (a ``--once`` run's
alert is still sent), then gives up on it: the thread is a daemon.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from connector.alerts.conditions import Observation, observe
from connector.alerts.debounce import Action, AlertState
from connector.alerts.webhook import AlertMessage, Webhook
from connector.redaction import redact, redact_exception
from connector.settings import Settings

__all__ = ["AlertMonitor"]

log = logging.getLogger(__name__)

_PREFIX = {"fire": "ALERT", "remind": "STILL", "recover": "RECOVERED"}


class AlertMonitor:
    """The alerts of one process: conditions from Redis, state in Redis, messages to one webhook."""

    def __init__(self, client: redis.Redis, settings: Settings, webhook: Webhook,
                 *, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.settings = settings
        self.webhook = webhook
        self.state = AlertState(client, repeat_s=settings.alert_repeat_s)
        self.clock = clock
        self._wake = threading.Condition()
        self._requested = False
        self._closing = False
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> AlertMonitor | None:
        """The monitor ``ALERT_WEBHOOK_URL`` asks for; None when it is unset."""
        if settings.alert_webhook_url is None:
            return None
        return cls(client, settings, Webhook(settings.alert_webhook_url, format=settings.alert_format))

    def evaluate(self, now: float | None = None) -> list[AlertMessage]:
        """One pass: observe, step every condition, send what is due; the messages sent (delivered or not)."""
        now = self.clock() if now is None else now
        sent: list[AlertMessage] = []
        for seen in observe(self.client, self.settings, now=now):
            action, since = self.state.step(seen.key, holding=seen.firing, now=now, grace_s=seen.grace_s)
            if action is None:
                continue
            message = _message(seen, action, since, now)
            self.webhook.post(message)
            sent.append(message)
        return sent

    def kick(self) -> None:
        """Ask for a pass on the monitor's thread; never blocks, never raises."""
        with self._wake:
            if self._closing:
                return
            self._requested = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
                self._thread.start()
            self._wake.notify()

    def close(self, wait_s: float | None = None) -> None:
        """Finish a requested pass (at most ``wait_s``, by default twice the webhook's timeout), then stop."""
        with self._wake:
            self._closing = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(self.webhook.timeout_s * 2 if wait_s is None else wait_s)
        if thread is None or not thread.is_alive():
            self.webhook.close()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._requested or self._closing)
                if not self._requested:
                    return
                self._requested = False
            try:
                self.evaluate()
            except redis.RedisError as exc:  # the poll loop reports the outage; the next poll's kick retries
                log.debug("alerts: Redis unavailable (%s: %s)", type(exc).__name__, redact(str(exc))[:200])
            except Exception as exc:
                log.error("alerts: evaluation failed unexpectedly\n%s", redact_exception(exc))


def _message(seen: Observation, action: Action, since: float, now: float) -> AlertMessage:
    recovered = action == "recover"
    held = f" (held {_duration(now - since)})" if recovered or action == "remind" else ""
    text = f"[afas-spotler-connector] {_PREFIX[action]} {seen.key}: {seen.text}{held}"
    return AlertMessage(
        text=redact(text), key=seen.key, condition=seen.condition, subject=seen.subject,
        state="recovered" if recovered else "firing", reminder=action == "remind",
        value=seen.value, threshold=seen.threshold, since=since, at=now,
    )


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
