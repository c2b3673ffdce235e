"""Alerts reach a real local HTTP receiver once per condition, and a dead receiver costs one log line."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import redis
from tests.alerts.conftest import EMAIL, NAME, dead_letter, healthy, monitor, polled, settings
from tests.alerts.receiver import SECRET_PATH, Receiver

from connector.alerts import AlertMonitor, Webhook
from connector.producers.loop import ProducerLock, run_loop
from connector.sandbox.server import free_port
from connector.stack import wait_until
from connector.state.rejections import RejectionStore
from connector.sync.rows import Rejection
from connector.workers.dead_letters import DeadLetterStore


def test_the_dead_letter_alert_and_its_recovery_arrive_once_each(redis_client: redis.Redis,
                                                                  receiver: Receiver) -> None:
    healthy(redis_client)
    alerts = monitor(redis_client, receiver.url)
    assert alerts.evaluate() == []
    dead_letter(redis_client)
    for _ in range(3):
        alerts.evaluate()
    dead_letter(redis_client, "d2")  # more letters while it holds: no new message
    alerts.evaluate()
    assert [b["text"] for b in receiver.received()] == [
        "[afas-spotler-connector] ALERT dead_letters:spotler: queue spotler: 1 dead letter(s); "
        "see `connector dlq list --queue spotler`"
    ]
    DeadLetterStore(redis_client).purge()
    for _ in range(3):
        alerts.evaluate()
    bodies = receiver.received()
    assert len(bodies) == 2
    assert set(bodies[1]) == {"text"}  # ALERT_FORMAT=slack: Slack's incoming-webhook body
    assert bodies[1]["text"].startswith(
        "[afas-spotler-connector] RECOVERED dead_letters:spotler: queue spotler: no dead letters (held ")
    assert receiver.paths == [SECRET_PATH, SECRET_PATH]


def test_two_evaluators_at_once_send_each_message_once(redis_url: str, redis_client: redis.Redis,
                                                       receiver: Receiver) -> None:
    healthy(redis_client)
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    monitors = [monitor(c, receiver.url) for c in clients]

    def together(rounds: int) -> None:
        barrier = threading.Barrier(len(monitors))
        errors: list[BaseException] = []

        def run(m: AlertMonitor) -> None:
            try:
                for _ in range(rounds):
                    barrier.wait(10)
                    m.evaluate()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(m,)) for m in monitors]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []

    dead_letter(redis_client)
    together(5)
    assert [b["text"].split(":")[0:2] for b in receiver.received()] == [["[afas-spotler-connector] ALERT dead_letters",
                                                                       "spotler"]]
    DeadLetterStore(redis_client).purge()
    together(5)
    texts = [b["text"] for b in receiver.received()]
    assert len(texts) == 2
    assert "RECOVERED dead_letters:spotler" in texts[1]
    for c in clients:
        c.close()


def test_a_receiver_that_is_down_costs_one_log_line_without_the_url(redis_client: redis.Redis,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"  # nothing listens there
    healthy(redis_client)
    dead_letter(redis_client)
    alerts = monitor(redis_client, url)
    sent = alerts.evaluate()  # does not raise
    assert [m.key for m in sent] == ["dead_letters:spotler"]
    alerts.evaluate()  # debounced: nothing more to send, nothing more to say
    lines = [r for r in caplog.records if r.name.startswith("connector")]
    assert [r.getMessage() for r in lines] == [
        "alert dead_letters:spotler (firing) not delivered: the webhook is unreachable (ConnectError)"
    ]
    assert lines[0].levelno == logging.WARNING
    assert SECRET_PATH not in caplog.text
    assert "s3cr3t" not in caplog.text


def test_a_receiver_that_refuses_is_one_log_line_too(redis_client: redis.Redis,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    with Receiver(status=500) as refusing:
        healthy(redis_client)
        dead_letter(redis_client)
        caplog.set_level(logging.INFO, logger="connector")
        monitor(redis_client, refusing.url).evaluate()
        assert len(refusing.received()) == 1
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("connector")]
    assert lines == ["alert dead_letters:spotler (firing) not delivered: the webhook answered HTTP 500"]
    assert "s3cr3t" not in caplog.text


def test_the_poll_loop_never_waits_for_the_webhook(redis_client: redis.Redis, receiver: Receiver) -> None:
    """Polls run to the end while the webhook holds the alert's request unanswered."""
    healthy(redis_client)
    dead_letter(redis_client)
    alerts = monitor(redis_client, receiver.url)
    receiver.hold()
    polls: list[int] = []

    def poll() -> None:
        if not polls:  # let the first kick's request reach the receiver, then poll on while it is held
            alerts.kick()
            assert receiver.arrived.wait(10)
        polls.append(1)

    code = run_loop(poll, ProducerLock(redis_client, "afas"), interval_s=0.01, max_polls=3,
                    after_poll=alerts.kick)
    assert code == 0
    assert len(polls) == 3
    assert receiver.received() == []  # the alert's request is still unanswered
    receiver.release()
    wait_until(receiver.received, timeout_s=10)
    alerts.close()
    assert [b["text"].split(" ")[2] for b in receiver.received()] == ["dead_letters:spotler:"]


def test_a_kick_with_the_receiver_down_never_raises_and_logs_once(redis_client: redis.Redis,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="connector")
    healthy(redis_client)
    dead_letter(redis_client)
    alerts = monitor(redis_client, f"http://127.0.0.1:{free_port()}{SECRET_PATH}")
    alerts.kick()
    alerts.close(wait_s=30)  # lets the requested pass finish on the monitor's thread
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("connector")]
    assert lines == ["alert dead_letters:spotler (firing) not delivered: the webhook is unreachable (ConnectError)"]


def test_a_failing_hook_does_not_stop_the_loop(redis_client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    polls: list[int] = []

    def hook() -> None:
        raise RuntimeError("boom")

    code = run_loop(lambda: polls.append(1), ProducerLock(redis_client, "afas"), interval_s=0.01, max_polls=2,
                    after_poll=hook)
    assert (code, len(polls)) == (0, 2)
    assert sum("after-poll hook failed" in r.getMessage() for r in caplog.records) == 2


def test_no_personal_data_in_any_payload(redis_client: redis.Redis) -> None:
    """Dead letters, rejections and lag with e-mail addresses and names about: the payloads hold none."""
    with Receiver() as receiver:
        alerts = monitor(redis_client, receiver.url, ALERT_FORMAT="json")
        polled(redis_client, "afas", read=10, rejected=5)
        polled(redis_client, "spotler", ago_s=5000, read=1)
        dead_letter(redis_client)
        RejectionStore(redis_client).add_many([Rejection(contact_id=EMAIL, field="Email",
                                                         reason=f"invalid e-mail address {EMAIL} ({NAME})")])
        alerts.evaluate()
        DeadLetterStore(redis_client).purge()
        healthy(redis_client)
        alerts.evaluate()
        bodies = receiver.received()
    assert {(b["key"], b["state"]) for b in bodies} == {
        (key, state) for key in ("dead_letters:spotler", "producer_lag:spotler", "rejected_share:afas")
        for state in ("firing", "recovered")
    }
    raw = json.dumps(bodies).lower()
    for value in (EMAIL.lower(), "marieke", "vries", "example.nl"):
        assert value not in raw


def test_a_webhook_that_does_not_answer_times_out_into_one_log_line(redis_client: redis.Redis,
                                                                     receiver: Receiver,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="connector")
    healthy(redis_client)
    dead_letter(redis_client)
    s = settings(receiver.url)
    assert s.alert_webhook_url is not None
    alerts = AlertMonitor(redis_client, s, Webhook(s.alert_webhook_url, timeout_s=0.2))
    receiver.hold()
    assert [m.key for m in alerts.evaluate()] == ["dead_letters:spotler"]
    receiver.release()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("connector")]
    assert lines == [
        "alert dead_letters:spotler (firing) not delivered: the webhook timed out after 0.2s (ReadTimeout)"
    ]
    assert "s3cr3t" not in caplog.text
