"""Fixtures of the alert tests: a webhook receiver and a link whose producers polled just now."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from tests.alerts.receiver import Receiver

from connector.alerts import AlertMonitor, Webhook
from connector.schemas.runs import PollResult
from connector.settings import Settings
from connector.state.runs import RunHistory
from connector.workers.dead_letters import DeadLetter, DeadLetterStore

EMAIL = "Marieke.deVries@example.nl"
NAME = "Marieke de Vries"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def settings(url: str, **env: str) -> Settings:
    return Settings.from_env({"ALERT_WEBHOOK_URL": url, **env})


def monitor(client: redis.Redis, url: str, **env: str) -> AlertMonitor:
    s = settings(url, **env)
    assert s.alert_webhook_url is not None
    return AlertMonitor(client, s, Webhook(s.alert_webhook_url, format=s.alert_format))


def polled(client: redis.Redis, source: str, *, ago_s: float = 5.0, now: float | None = None,
           **counts: Any) -> None:
    """A poll of ``source`` that ended ``ago_s`` before ``now``."""
    now = time.time() if now is None else now
    RunHistory(client).record(PollResult(run_id=f"{source}-{now - ago_s:.0f}-{len(counts)}", source=source,
                                         started_at=now - ago_s - 1, duration_s=1.0, **counts))


def healthy(client: redis.Redis, now: float | None = None) -> None:
    for source in ("afas", "spotler"):
        polled(client, source, now=now, read=10)


def dead_letter(client: redis.Redis, letter_id: str = "d1") -> None:
    """A dead letter whose error, key and payload hold personal data: none of it may reach an alert."""
    DeadLetterStore(client).add(DeadLetter(
        id=letter_id, queue="spotler", actor="upsert_batch",
        message={"args": [{"contacts": [{"externalId": EMAIL, "firstName": NAME}]}]},
        reason="fatal", error_class="RecordRejected", error=f"invalid e-mail {EMAIL} for {NAME}", attempts=1,
        failed_at=time.time(), entity_key=f"contact:{EMAIL}",
    ))

