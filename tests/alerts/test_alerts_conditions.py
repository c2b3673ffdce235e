"""Producer lag, never polled, rejected share and the debounce over time (times passed in, no sleeps)."""

from __future__ import annotations

import time

import pytest
import redis
from tests.alerts.conftest import dead_letter, healthy, monitor, polled
from tests.alerts.receiver import SECRET_PATH, Receiver

from connector.alerts import AlertMonitor, AlertState, Webhook
from connector.errors import ConfigError
from connector.events.outbox import OUTBOX, Outbox
from connector.events.schemas import ContactSynced, RecordRejected
from connector.settings import Settings
from connector.workers.dead_letters import DeadLetterStore


def keys_sent(alerts: AlertMonitor, now: float) -> list[tuple[str, str, bool]]:
    return [(m.key, m.state, m.reminder) for m in alerts.evaluate(now=now)]


def test_a_lagging_producer_alerts_with_structured_fields_and_recovers(redis_client: redis.Redis,
                                                                        receiver: Receiver) -> None:
    now = time.time()
    polled(redis_client, "afas", ago_s=1000, now=now, read=3)
    polled(redis_client, "spotler", ago_s=5, now=now, read=3)
    alerts = monitor(redis_client, receiver.url, ALERT_FORMAT="json", STATUS_MAX_LAG_S="900")
    assert keys_sent(alerts, now) == [("producer_lag:afas", "firing", False)]
    assert keys_sent(alerts, now + 30) == []
    body = receiver.received()[0]
    assert {k: body[k] for k in ("key", "condition", "subject", "state", "reminder", "threshold")} == {
        "key": "producer_lag:afas", "condition": "producer_lag", "subject": "afas", "state": "firing",
        "reminder": False, "threshold": 900.0,
    }
    assert body["value"] == pytest.approx(1000, abs=1)
    assert "producer afas: last successful poll ended 1000s ago (limit 900s)" in body["text"]
    polled(redis_client, "afas", ago_s=1, now=now + 60, read=3)
    assert keys_sent(alerts, now + 60) == [("producer_lag:afas", "recovered", False)]
    assert receiver.received()[1]["text"].endswith("(held 60s)")


def test_a_producer_that_never_polled_is_announced_only_after_the_lag_limit(redis_client: redis.Redis,
                                                                             receiver: Receiver) -> None:
    now = time.time()
    polled(redis_client, "afas", now=now, read=3)
    alerts = monitor(redis_client, receiver.url, STATUS_MAX_LAG_S="900")
    assert keys_sent(alerts, now) == []
    polled(redis_client, "afas", now=now + 600, read=3)
    assert keys_sent(alerts, now + 600) == []
    polled(redis_client, "afas", now=now + 900, read=3)
    assert keys_sent(alerts, now + 900) == [("producer_lag:spotler", "firing", False)]
    assert "producer spotler: no successful poll recorded" in receiver.received()[0]["text"]


def test_a_never_polled_producer_that_starts_within_its_grace_says_nothing(redis_client: redis.Redis,
                                                                            receiver: Receiver) -> None:
    now = time.time()
    polled(redis_client, "afas", now=now, read=3)
    alerts = monitor(redis_client, receiver.url, STATUS_MAX_LAG_S="900")
    assert keys_sent(alerts, now) == []
    polled(redis_client, "spotler", now=now + 300, read=3)
    assert keys_sent(alerts, now + 300) == []
    assert keys_sent(alerts, now + 2000) == [("producer_lag:afas", "firing", False),
                                             ("producer_lag:spotler", "firing", False)]
    assert receiver.received() != []


def test_the_rejected_share_of_the_last_poll(redis_client: redis.Redis, receiver: Receiver) -> None:
    now = time.time()
    alerts = monitor(redis_client, receiver.url, ALERT_REJECTED_SHARE="0.05")
    polled(redis_client, "spotler", now=now, read=3)
    polled(redis_client, "afas", now=now, read=100, rejected=5)  # exactly at the limit: fine
    assert keys_sent(alerts, now) == []
    polled(redis_client, "afas", now=now + 30, read=100, rejected=6)
    assert keys_sent(alerts, now + 30) == [("rejected_share:afas", "firing", False)]
    text = receiver.received()[0]["text"]
    assert "producer afas: poll afas-" in text
    assert "rejected 6 of 100 rows (6.0%, limit 5.0%); see `connector rejects`" in text
    polled(redis_client, "afas", now=now + 60, read=0)  # a poll that read nothing says nothing
    assert keys_sent(alerts, now + 60) == []
    polled(redis_client, "afas", now=now + 90, read=40, rejected=1)
    assert keys_sent(alerts, now + 90) == [("rejected_share:afas", "recovered", False)]
    assert len(receiver.received()) == 2


def test_a_condition_that_holds_is_repeated_once_per_alert_repeat_s(redis_client: redis.Redis,
                                                                     receiver: Receiver) -> None:
    now = time.time()
    healthy(redis_client, now=now)
    dead_letter(redis_client)
    alerts = monitor(redis_client, receiver.url, ALERT_REPEAT_S="3600", STATUS_MAX_LAG_S="100000")
    fired = [("dead_letters:spotler", "firing", False)]
    assert keys_sent(alerts, now) == fired
    assert keys_sent(alerts, now + 3599) == []
    assert keys_sent(alerts, now + 3600) == [("dead_letters:spotler", "firing", True)]
    assert keys_sent(alerts, now + 7000) == []
    assert "STILL dead_letters:spotler" in receiver.received()[1]["text"]


def test_a_flapping_condition_is_announced_once_per_alert_repeat_s(redis_client: redis.Redis,
                                                                    receiver: Receiver) -> None:
    now = time.time()
    healthy(redis_client, now=now)
    alerts = monitor(redis_client, receiver.url, ALERT_REPEAT_S="3600", STATUS_MAX_LAG_S="100000")
    store = DeadLetterStore(redis_client)
    seen: list[tuple[str, str, bool]] = []
    for minute in range(0, 50, 10):  # comes and goes every ten minutes
        dead_letter(redis_client)
        seen += keys_sent(alerts, now + minute * 60)
        store.purge()
        seen += keys_sent(alerts, now + minute * 60 + 300)
    assert seen == [("dead_letters:spotler", "firing", False), ("dead_letters:spotler", "recovered", False)]
    dead_letter(redis_client)  # back after the window: announced again
    assert keys_sent(alerts, now + 3600) == [("dead_letters:spotler", "firing", False)]
    assert len(receiver.received()) == 3


def test_the_debounce_state_alone(redis_client: redis.Redis) -> None:
    state = AlertState(redis_client, repeat_s=100)
    assert state.step("x:y", holding=False, now=1000) == (None, 0.0)
    assert state.step("x:y", holding=True, now=1000, grace_s=50) == (None, 1000.0)
    assert state.step("x:y", holding=True, now=1050, grace_s=50) == ("fire", 1000.0)
    assert state.step("x:y", holding=True, now=1149, grace_s=50) == (None, 1000.0)
    assert state.step("x:y", holding=True, now=1150, grace_s=50) == ("remind", 1000.0)
    assert state.step("x:y", holding=False, now=1160) == ("recover", 1000.0)
    assert state.step("x:y", holding=False, now=1170) == (None, 0.0)
    assert 0 < redis_client.pttl("connector:alert:x:y") <= 100_000  # "sent" outlives the episode, not forever


def test_settings_mask_the_webhook_url_and_check_the_alert_settings() -> None:
    url = f"https://hooks.example.com{SECRET_PATH}"
    s = Settings.from_env({"ALERT_WEBHOOK_URL": url})
    assert s.alert_webhook_url is not None
    assert s.alert_webhook_url.reveal() == url
    assert (s.alert_format, s.alert_repeat_s, s.alert_rejected_share) == ("slack", 3600.0, 0.05)
    for shown in (repr(s), str(s), repr(Webhook(s.alert_webhook_url))):
        assert "s3cr3t" not in shown
    with pytest.raises(ConfigError) as bad:
        Settings.from_env({"ALERT_WEBHOOK_URL": "ftp://hooks.example.com/s3cr3t"})
    assert "s3cr3t" not in str(bad.value)
    with pytest.raises(ConfigError, match="ALERT_FORMAT"):
        Settings.from_env({"ALERT_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="ALERT_REJECTED_SHARE"):
        Settings.from_env({"ALERT_REJECTED_SHARE": "1.5"})
    with pytest.raises(ConfigError, match="ALERT_REPEAT_S"):
        Settings.from_env({"ALERT_REPEAT_S": "0"})
    assert AlertMonitor.from_settings(redis.Redis(), Settings.from_env({})) is None


def test_an_outbox_the_bus_does_not_drain_alerts_before_it_drops_and_recovers(redis_client: redis.Redis,
                                                                               receiver: Receiver) -> None:
    now = time.time()
    polled(redis_client, "afas", now=now, read=3)
    polled(redis_client, "spotler", now=now, read=3)
    quiet = monitor(redis_client, receiver.url)  # no EVENTS_URL: the outbox is not looked at
    alerts = monitor(redis_client, receiver.url, EVENTS_URL="amqp://bus.example:5672//", EVENTS_OUTBOX_MAX="4")
    outbox = Outbox(redis_client, max_len=4)
    outbox.record([RecordRejected(contact_id="1", source="afas", field="email", reason="invalid e-mail address")])
    assert keys_sent(alerts, now) == []
    outbox.record([ContactSynced(contact_id=str(n), fields=["email"]) for n in (2, 3)])
    assert keys_sent(quiet, now) == []
    assert keys_sent(alerts, now) == [("events_outbox:outbox", "firing", False)]
    text = receiver.received()[0]["text"]
    assert "events outbox: 3 events not yet accepted by the bus (alert at 2, EVENTS_OUTBOX_MAX 4)" in text
    assert "bus.example" not in text
    redis_client.xtrim(OUTBOX, maxlen=1, approximate=False)  # the publisher drained it
    assert keys_sent(alerts, now + 30) == [("events_outbox:outbox", "recovered", False)]
