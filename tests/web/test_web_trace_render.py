"""The trace page without a server: every part of a Trace shown, named and escaped."""

from __future__ import annotations

from tests.web.chromium import read_metrics
from tests.web.test_web_render import report

from connector.status.trace import FieldRow, Step, Trace
from connector.web.page import render_page
from connector.web.trace_page import render_lookup, render_trace

HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>&amp;'


def trace(**changes: object) -> Trace:
    base: dict[str, object] = {
        "contact_id": "4711", "verdict": "differs: city (the next poll of the side that moved picks it up)",
        "timeline": [Step(at="2024-05-01T10:00:00Z", kind="seen", text="change seen in AFAS: enqueued for Spotler"),
                     Step(at="2024-05-01T10:00:03Z", kind="wrote", text="write into Spotler contact/list: ok")],
        "fields": [FieldRow(field="city", agreed="'Breda'", afas="'Zwolle'", spotler="'Breda'", same=False),
                   FieldRow(field="email", agreed="<e-mail 1a2b>", afas="<e-mail 1a2b>", spotler=None, same=True)],
        "afas": "read", "spotler": "not read: missing setting(s): SPOTLER_BASE_URL",
        "pending": {"spotler": ["city", "lastName"]}, "queued": {"afas": 2},
        "dead_letters": ["abc (afas, fatal: RecordRejected)"], "rejections": ["afas field Email: <b>bad</b>"],
        "journal_on": True,
    }
    return Trace(**{**base, **changes})  # type: ignore[arg-type]


def test_every_part_of_the_trace_is_on_the_page_by_name() -> None:
    html = render_trace(trace())
    shown = read_metrics(html)
    assert shown == {
        "trace.verdict": "differs: city (the next poll of the side that moved picks it up)",
        "trace.contact_id": "4711",
        "trace.step.0.at": "2024-05-01T10:00:00Z", "trace.step.0.text": "change seen in AFAS: enqueued for Spotler",
        "trace.step.1.at": "2024-05-01T10:00:03Z", "trace.step.1.text": "write into Spotler contact/list: ok",
        "trace.afas": "read", "trace.spotler": "not read: missing setting(s): SPOTLER_BASE_URL",
        "trace.field.city.agreed": "'Breda'", "trace.field.city.afas": "'Zwolle'",
        "trace.field.city.spotler": "'Breda'", "trace.field.city.same": "false",
        "trace.field.email.agreed": "<e-mail 1a2b>", "trace.field.email.afas": "<e-mail 1a2b>",
        "trace.field.email.spotler": "", "trace.field.email.same": "true",
        "trace.pending.spotler": "city, lastName", "trace.queued.afas": "2",
        "trace.dead_letter.0": "abc (afas, fatal: RecordRejected)", "trace.rejection.0": "afas field Email: <b>bad</b>",
    }
    assert '<div class="verdict bad">' in html
    assert "2024-05-01 10:00:03" in html  # the time as a person reads it, UTC like the status page
    assert '<span data-metric="trace.field.city.same" data-value="false" class="badge bad">differs</span>' in html
    assert "&lt;e-mail 1a2b&gt;" in html
    assert "<meta http-equiv" not in html  # each load reads both sides live: no reloading


def test_a_verdict_in_step_or_waiting_is_calm_and_an_empty_trace_says_so() -> None:
    calm = render_trace(trace(verdict="in step", timeline=[], fields=[], pending={}, queued={}, dead_letters=[],
                              rejections=[]))
    assert '<div class="verdict ok">' in calm
    assert "no step journalled for this contact" in calm
    assert "nothing on its way, no dead letter, no rejection" in calm
    assert '<div class="verdict idle">' in render_trace(trace(verdict="waiting: 1 message in queue afas"))
    assert "the journal is off (JOURNAL_MAX_ENTRIES=0)" in render_trace(trace(timeline=[], journal_on=False))


def test_hostile_text_anywhere_in_a_trace_is_escaped() -> None:
    html = render_trace(trace(
        contact_id=HOSTILE, verdict=HOSTILE, timeline=[Step(at=HOSTILE, kind="seen", text=HOSTILE)],
        fields=[FieldRow(field=HOSTILE, agreed=HOSTILE, afas=HOSTILE, spotler=HOSTILE, same=False)],
        afas=HOSTILE, spotler=HOSTILE, pending={HOSTILE: [HOSTILE]}, queued={HOSTILE: 1},
        dead_letters=[HOSTILE], rejections=[HOSTILE],
    ))
    assert "<script" not in html
    assert "<img" not in html
    assert HOSTILE not in html
    assert "&lt;script&gt;" in html
    assert f'value="{HOSTILE}"' not in html  # the lookup form holds the id, escaped
    assert read_metrics(html)["trace.verdict"] == HOSTILE


def test_the_status_page_has_the_lookup_form_and_the_lookup_page_says_what_was_wrong() -> None:
    page = render_page(report())
    assert '<form class="lookup" method="get" action="/trace">' in page
    assert 'name="contact"' in page
    assert 'maxlength="64"' in page
    alone = render_lookup("A contact id is at most 64 characters.")
    assert '<p class="warn">A contact id is at most 64 characters.</p>' in alone
    assert 'action="/trace"' in alone
