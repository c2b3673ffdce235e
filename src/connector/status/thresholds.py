"""The thresholds monitoring acts on, and the exit status of ``connector status``.

- exit 2: dead letters are present (in the store, or still in Dramatiq's own
  dead-letter queue);
- exit 3: a producer's last successful poll ended more than ``STATUS_MAX_LAG_S``
  ago, or it never polled.

When both hold the status is 3: a stalled producer means nothing syncs at all,
while dead letters are individual records. Every crossed threshold is listed.
"""

from __future__ import annotations

from collections.abc import Iterable

from connector.status.report import Alert, ProducerStatus, QueueStatus

__all__ = ["EXIT_DEAD_LETTERS", "EXIT_OK", "EXIT_PRODUCER_LAG", "check", "exit_code"]

EXIT_OK = 0
EXIT_DEAD_LETTERS = 2
EXIT_PRODUCER_LAG = 3


def check(queues: Iterable[QueueStatus], producers: Iterable[ProducerStatus], max_lag_s: float) -> list[Alert]:
    """Every crossed threshold, queues first, in the order given."""
    alerts: list[Alert] = []
    for queue in queues:
        dead = queue.dead_letters + queue.broker_dead
        if dead:
            alerts.append(Alert(
                kind="dead_letters", subject=queue.name, exit_code=EXIT_DEAD_LETTERS,
                message=f"queue {queue.name}: {dead} dead letter(s); see `connector dlq list --queue {queue.name}`",
            ))
    for producer in producers:
        if producer.lag_s is None:
            alerts.append(Alert(
                kind="never_polled", subject=producer.source, exit_code=EXIT_PRODUCER_LAG,
                message=f"producer {producer.source}: no successful poll recorded",
            ))
        elif producer.lag_s > max_lag_s:
            alerts.append(Alert(
                kind="producer_lag", subject=producer.source, exit_code=EXIT_PRODUCER_LAG,
                message=(f"producer {producer.source}: last successful poll ended {producer.lag_s:.0f}s ago "
                         f"(limit {max_lag_s:.0f}s)"),
            ))
    return alerts


def exit_code(alerts: Iterable[Alert]) -> int:
    return max((alert.exit_code for alert in alerts), default=EXIT_OK)
