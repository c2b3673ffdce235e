"""Rendering without a server: escaping in the page and in the Prometheus text."""

from __future__ import annotations

import msgspec
from tests.web.chromium import read_metrics
from tests.web.page_metrics import expected_metrics

from connector.schemas.runs import PollResult
from connector.status.report import (
    Alert,
    ConflictSummary,
    DeadLetterSummary,
    Limits,
    ProducerStatus,
    QueueStatus,
    RejectionSummary,
    RejectionView,
    StatusReport,
)
from connector.web.metrics import render_metrics
from connector.web.page import render_page

ODD = 'quote " backslash \\ newline \n <tag> & done'


def report() -> StatusReport:
    return StatusReport(
        generated_at=1_700_000_000.25, max_lag_s=900.0,
        queues=[QueueStatus(name="spotler", ready=3, delayed=0, in_flight=1, dead_letters=0, broker_dead=0,
                            oldest_age_s=12.5)],
        producers=[ProducerStatus(source="afas", running=True, cursor="2024-01-01T00:00:00+00:00",
                                  last_poll_end=1_699_999_990.0, lag_s=10.25, last_run_id="r1"),
                   ProducerStatus(source="spotler", running=False, cursor=None, last_poll_end=None, lag_s=None,
                                  last_run_id=None)],
        runs={"afas": [PollResult(run_id="r1", started_at=1_699_999_989.0, duration_s=1.0, read=5)], "spotler": []},
        rejections=RejectionSummary(total=1, by_reason={ODD: 1}, latest=[
            RejectionView(source="afas", contact_id=None, field="ContactId", reason=ODD, last_seen=1.5)]),
        dead_letters=DeadLetterSummary(total=0, by_queue={}, latest=[]),
        conflicts=ConflictSummary(total=0, by_rule={}, latest=[]),
        limits=Limits(spotler_rate_per_s=5.0, spotler_booked_ahead_s=0.0, afas_in_use=0, afas_limit=4),
        counters={"spotler_written": 3},
        alerts=[Alert(kind="never_polled", subject="spotler", exit_code=3, message="producer spotler: never")],
        exit_code=3,
    )


def test_page_escapes_text_and_attributes_and_names_every_figure() -> None:
    html = render_page(report())
    assert "<tag>" not in html
    as_json = msgspec.json.decode(msgspec.json.encode(report()))
    assert read_metrics(html) == expected_metrics(as_json)
    assert read_metrics(html)[f"rejections.by_reason.{ODD}"] == "1"


def test_prometheus_label_values_are_escaped() -> None:
    text = render_metrics(report())
    assert 'connector_rejections{reason="quote \\" backslash \\\\ newline \\n <tag> & done"} 1' in text
    assert "connector_producer_lag_seconds{source=\"afas\"} 10.25" in text
    # A producer that never polled has no lag sample (an absent series, not a fake 0).
    assert 'connector_producer_lag_seconds{source="spotler"}' not in text
    assert 'connector_status_alert{kind="never_polled",subject="spotler"} 1' in text
    assert text.endswith("\n")
    assert "\n\n" not in text
