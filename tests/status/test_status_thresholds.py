"""The thresholds behind ``connector status``'s exit status (pure)."""

from __future__ import annotations

from connector.status.report import ProducerStatus, QueueStatus
from connector.status.thresholds import EXIT_DEAD_LETTERS, EXIT_OK, EXIT_PRODUCER_LAG, check, exit_code


def queue(name: str = "spotler", dead: int = 0, broker_dead: int = 0) -> QueueStatus:
    return QueueStatus(name=name, ready=5, delayed=1, in_flight=2, dead_letters=dead, broker_dead=broker_dead,
                       oldest_age_s=3.0)


def producer(source: str = "afas", lag: float | None = 10.0) -> ProducerStatus:
    return ProducerStatus(source=source, running=True, cursor=None, last_poll_end=None if lag is None else 1.0,
                          lag_s=lag, last_run_id=None if lag is None else "r1")


def test_healthy_link_has_no_alerts_and_exit_0() -> None:
    alerts = check([queue(), queue("afas")], [producer(), producer("spotler", 899.9)], max_lag_s=900)
    assert alerts == []
    assert exit_code(alerts) == EXIT_OK == 0


def test_dead_letters_in_the_store_or_the_broker_dlq_give_exit_2() -> None:
    alerts = check([queue(dead=3), queue("afas", broker_dead=1)], [producer()], max_lag_s=900)
    assert [(a.kind, a.subject, a.exit_code) for a in alerts] == [
        ("dead_letters", "spotler", 2), ("dead_letters", "afas", 2),
    ]
    assert "3 dead letter(s)" in alerts[0].message
    assert exit_code(alerts) == EXIT_DEAD_LETTERS == 2


def test_lag_above_the_limit_and_never_polled_give_exit_3() -> None:
    alerts = check([queue()], [producer(lag=900.5), producer("spotler", None)], max_lag_s=900)
    assert [(a.kind, a.subject) for a in alerts] == [("producer_lag", "afas"), ("never_polled", "spotler")]
    assert "limit 900s" in alerts[0].message
    assert "no successful poll" in alerts[1].message
    assert exit_code(alerts) == EXIT_PRODUCER_LAG == 3


def test_lag_exactly_at_the_limit_is_still_fine() -> None:
    assert check([], [producer(lag=900.0)], max_lag_s=900) == []


def test_a_stalled_producer_outranks_dead_letters_and_both_are_listed() -> None:
    alerts = check([queue(dead=1)], [producer(lag=5000)], max_lag_s=900)
    assert {a.kind for a in alerts} == {"dead_letters", "producer_lag"}
    assert exit_code(alerts) == 3
