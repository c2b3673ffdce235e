"""A status report in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

from collections.abc import Iterable

from connector.status.report import StatusReport

__all__ = ["CONTENT_TYPE", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = dict[str, str]
Sample = tuple[Labels, float | int]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float | int) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value) if isinstance(value, int) else repr(float(value))


def _family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{label_text}}} {_number(value)}" if labels else f"{name} {_number(value)}")
    return lines


def render_metrics(report: StatusReport) -> str:
    """Queue depths, dead letters, producer lag, last runs, rejections, conflicts, limits, counters."""
    r = report
    polled = [p for p in r.producers if p.last_poll_end is not None]
    last_runs = {source: runs[0] for source, runs in r.runs.items() if runs}
    families = [
        _family("connector_queue_messages", "gauge", "Messages in a queue by state (ready, delayed, in_flight).",
                [({"queue": q.name, "state": state}, value) for q in r.queues
                 for state, value in (("ready", q.ready), ("delayed", q.delayed), ("in_flight", q.in_flight))]),
        _family("connector_queue_oldest_message_age_seconds", "gauge",
                "Age of the oldest outstanding message of a queue since its first enqueue (0 when empty).",
                [({"queue": q.name}, q.oldest_age_s or 0.0) for q in r.queues]),
        _family("connector_dead_letters", "gauge", "Dead letters in the connector's store, per queue.",
                [({"queue": q.name}, q.dead_letters) for q in r.queues]),
        _family("connector_broker_dead_letters", "gauge",
                "Messages in Dramatiq's own dead-letter queue, not yet taken over by the store.",
                [({"queue": q.name}, q.broker_dead) for q in r.queues]),
        _family("connector_producer_running", "gauge", "1 when a producer process holds the producer lock.",
                [({"source": p.source}, p.running) for p in r.producers]),
        _family("connector_producer_last_success_timestamp_seconds", "gauge",
                "When the producer's last successful poll ended (absent: never polled).",
                [({"source": p.source}, p.last_poll_end or 0.0) for p in polled]),
        _family("connector_producer_lag_seconds", "gauge",
                "Seconds since the producer's last successful poll ended (absent: never polled).",
                [({"source": p.source}, p.lag_s or 0.0) for p in polled]),
        _family("connector_last_run_records", "gauge", "Records of the latest poll per source, by outcome.",
                [({"source": source, "outcome": outcome}, value) for source, run in last_runs.items()
                 for outcome, value in (("read", run.read), ("changed", run.changed), ("unchanged", run.unchanged),
                                        ("rejected", run.rejected), ("enqueued_messages", run.enqueued_messages))]),
        _family("connector_last_run_duration_seconds", "gauge", "Duration of the latest poll per source.",
                [({"source": source}, run.duration_s) for source, run in last_runs.items()]),
        _family("connector_rejections", "gauge", "Rejected records currently kept, by reason.",
                [({"reason": reason}, n) for reason, n in r.rejections.by_reason.items()]),
        _family("connector_rejected_records", "gauge", "Rejected records currently kept (all reasons).",
                [({}, r.rejections.total)]),
        _family("connector_conflicts", "gauge", "Settled conflicts currently kept, by rule.",
                [({"rule": rule}, n) for rule, n in r.conflicts.by_rule.items()]),
        _family("connector_spotler_rate_limit_per_second", "gauge", "Configured Spotler requests per second.",
                [({}, r.limits.spotler_rate_per_s)]),
        _family("connector_spotler_rate_booked_ahead_seconds", "gauge",
                "How far ahead Spotler request slots are already booked.", [({}, r.limits.spotler_booked_ahead_s)]),
        _family("connector_afas_calls_in_flight", "gauge", "AFAS calls in flight across all processes.",
                [({}, r.limits.afas_in_use)]),
        _family("connector_afas_calls_limit", "gauge", "AFAS_MAX_PARALLEL.", [({}, r.limits.afas_limit)]),
        _family("connector_events_outbox_length", "gauge",
                "Events recorded and not yet accepted by the bus (EVENTS_URL); grows while it is down.",
                [({}, r.events.outbox)] if r.events is not None else []),
        _family("connector_counter_total", "counter", "Running totals kept by the workers, by name.",
                [({"name": name}, n) for name, n in r.counters.items()]),
        _family("connector_status_alert", "gauge", "1 per crossed status threshold.",
                [({"kind": a.kind, "subject": a.subject}, 1) for a in r.alerts]),
        _family("connector_status_exit_code", "gauge",
                "Exit status `connector status` would give: 0 ok, 2 dead letters, 3 producer lag.",
                [({}, r.exit_code)]),
    ]
    return "\n".join(line for family in families for line in family) + "\n"
