"""One contact's ``Trace`` as a page: the verdict, the timeline, the fields of both sides, what is on its way.

The page shows the trace as ``connector trace`` builds it: values are already
masked there (a personal value as a short digest), and every text here is
escaped. Like the status page, every shown item has a ``data-metric`` name
(``trace.verdict``, ``trace.step.<n>.text``, ``trace.field.<name>.afas``, …)
and a ``data-value``. The page does not reload itself: each load reads AFAS
and Spotler live.
"""

from __future__ import annotations

from html import escape

from connector.status.trace import FieldRow, Trace
from connector.web.page import _SIGN_OUT, _document, _empty, _iso, _m, _section, _table, lookup_form

__all__ = ["render_lookup", "render_trace"]

_CALM = ("in step", "waiting", "unknown to the link", "forgotten")


def _header(title: str, contact_id: str) -> str:
    return (f"<header><h1>{title}</h1><div>{lookup_form(contact_id)} "
            f'<a class="meta" href="/">status</a> {_SIGN_OUT}</div></header>')


def _verdict(trace: Trace) -> str:
    tone = "ok" if trace.verdict == "in step" else "idle" if trace.verdict.startswith(_CALM) else "bad"
    return (f'<div class="verdict {tone}">{_m("trace.verdict", trace.verdict)}</div>'
            f'<p class="meta">{_m("trace.contact_id", trace.contact_id, "ContactId " + trace.contact_id)} · '
            "times in UTC · values masked: a personal value shows as a short digest, equal values alike · "
            "AFAS and Spotler read live for this page</p>")


def _timeline(trace: Trace) -> str:
    if not trace.timeline:
        note = ("no step journalled for this contact" if trace.journal_on
                else "the journal is off (JOURNAL_MAX_ENTRIES=0)")
        return _section("Timeline", _empty(note), "timeline")
    rows = [[_m(f"trace.step.{n}.at", s.at, _iso(s.at), "muted"), _m(f"trace.step.{n}.text", s.text)]
            for n, s in enumerate(trace.timeline)]
    return _section("Timeline", _table(["time", "step"], rows, wrap=[1]), "timeline")


def _side(name: str, label: str, read: str) -> str:
    return f"{escape(label)}: " + _m(f"trace.{name}", read, cls="" if read == "read" else "warn")


def _row(r: FieldRow) -> list[str]:
    p = f"trace.field.{r.field}"
    mark = _m(f"{p}.same", r.same, "same" if r.same else "differs", cls="muted" if r.same else "badge bad")
    return [f"<strong>{escape(r.field)}</strong>", _m(f"{p}.agreed", r.agreed), _m(f"{p}.afas", r.afas),
            _m(f"{p}.spotler", r.spotler), mark]


def _fields(trace: Trace) -> str:
    sides = f'<p class="meta">{_side("afas", "AFAS", trace.afas)} · {_side("spotler", "Spotler", trace.spotler)}</p>'
    if not trace.fields:
        return _section("Fields", sides + _empty("no values: not agreed and not read on either side"), "fields")
    table = _table(["field", "agreed", "AFAS", "Spotler", ""], [_row(r) for r in trace.fields])
    return _section("Fields", sides + table, "fields")


def _open(trace: Trace) -> str:
    items = [f"on its way into {escape(into)}: " + _m(f"trace.pending.{into}", ", ".join(fields))
             for into, fields in sorted(trace.pending.items())]
    items += [f"queue {escape(q)}: " + _m(f"trace.queued.{q}", n) + " message(s)"
              for q, n in sorted(trace.queued.items())]
    items += ["dead letter: " + _m(f"trace.dead_letter.{i}", d, cls="warn") for i, d in enumerate(trace.dead_letters)]
    items += ["rejected: " + _m(f"trace.rejection.{i}", r, cls="warn") for i, r in enumerate(trace.rejections)]
    if not items:
        return _section("On its way", _empty("nothing on its way, no dead letter, no rejection"), "open")
    return _section("On its way", "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>", "open")


def render_trace(trace: Trace) -> str:
    """The page of one trace."""
    body = (
        _header(f"Contact <code>{escape(trace.contact_id)}</code>", trace.contact_id) + _verdict(trace)
        + f'<div class="grid">{_timeline(trace)}</div>'
        + f'<div class="grid">{_fields(trace)}</div>'
        + f'<div class="grid">{_open(trace)}</div>'
    )
    return _document(f"Contact {trace.contact_id}", body, None)


def render_lookup(problem: str | None) -> str:
    """The lookup form alone (no contact asked yet, or a bad one: ``problem`` says why, never echoing it)."""
    note = f'<p class="warn">{escape(problem)}</p>' if problem else ""
    body = _header("Look up a contact", "") + (
        f'<section>{note}<p>Enter an AFAS ContactId to see what the link did with it, '
        "both sides' values and what is on its way.</p></section>")
    return _document("Look up a contact", body, None)
