"""The status page as one self-contained HTML document: inline CSS, no scripts, no external assets.

Every figure is an element with ``data-metric`` (a stable name such as
``queue.spotler.ready`` or ``run.afas.<run_id>.read``) and ``data-value`` (the
figure as the report holds it: integers and floats as Python prints them, booleans
``true``/``false``, a missing value empty), so tools and tests read the page
without parsing its text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape

from connector.schemas.runs import PollResult
from connector.status.report import StatusReport
from connector.web.lookup import MAX_CONTACT_ID
from connector.web.style import CSS

__all__ = ["REFRESH_S", "lookup_form", "render_message", "render_page", "render_signin"]

REFRESH_S = 5

Figure = str | int | float | bool | None


def _value(value: Figure) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _m(name: str, value: Figure, text: str | None = None, cls: str = "") -> str:
    """One figure: its stable name, its raw value, and how a person reads it."""
    shown = text if text is not None else ("—" if value is None else _count(value))
    klass = f' class="{cls}"' if cls else ""
    return (f'<span data-metric="{escape(name)}" data-value="{escape(_value(value))}"{klass}>'
            f"{escape(shown)}</span>")


def _count(value: Figure) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if seconds >= size:
            rest = int(seconds % size // subsize)
            return f"{int(seconds // size)}{unit}" + (f" {rest}{sub}" if rest else "")
    return f"{seconds:.0f}s"


def _time(epoch: float | None) -> str:
    """UTC, without the zone: the page header says so once."""
    if epoch is None:
        return "—"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(text: str | None) -> str:
    if not text:
        return "—"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return _time(moment.timestamp()) if moment.tzinfo else text


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = (),
           wrap: Iterable[int] = ()) -> str:
    """Cells are already HTML; ``numeric`` columns align right, ``wrap`` columns may break lines."""
    classes = {i: "n" for i in numeric} | {i: "wrap" for i in wrap}

    def cell(tag: str, i: int, content: str) -> str:
        return f'<{tag} class="{classes[i]}">{content}</{tag}>' if i in classes else f"<{tag}>{content}</{tag}>"

    head = "".join(cell("th", i, escape(h)) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, body: str, ident: str) -> str:
    return f'<section id="{ident}"><h2>{escape(title)}</h2>{body}</section>'


def _empty(text: str) -> str:
    return f'<p class="empty">{escape(text)}</p>'


def _queues(r: StatusReport) -> str:
    rows = []
    for q in r.queues:
        p = f"queue.{q.name}"
        dead = q.dead_letters + q.broker_dead
        rows.append([
            f"<strong>{escape(q.name)}</strong>", _m(f"{p}.ready", q.ready), _m(f"{p}.delayed", q.delayed),
            _m(f"{p}.in_flight", q.in_flight), _m(f"{p}.dead_letters", q.dead_letters, cls="warn" if dead else ""),
            _m(f"{p}.broker_dead", q.broker_dead), _m(f"{p}.oldest_age_s", q.oldest_age_s, _duration(q.oldest_age_s)),
        ])
    table = _table(["queue", "ready", "delayed", "in flight", "dead", "broker DLQ", "oldest"], rows,
                   numeric=range(1, 7))
    return _section("Queues", table, "queues")


def _producers(r: StatusReport) -> str:
    rows = []
    for s in r.producers:
        p = f"producer.{s.source}"
        late = s.lag_s is None or s.lag_s > r.max_lag_s
        rows.append([
            f"<strong>{escape(s.source)}</strong>",
            _m(f"{p}.running", s.running, "running" if s.running else "stopped",
               cls="badge ok" if s.running else "badge idle"),
            _m(f"{p}.lag_s", s.lag_s, _duration(s.lag_s) if s.lag_s is not None else "never polled",
               cls="warn" if late else ""),
            _m(f"{p}.last_poll_end", s.last_poll_end, _time(s.last_poll_end), cls="muted"),
            _m(f"{p}.cursor", s.cursor, _iso(s.cursor), cls="muted"),
        ])
    table = _table(["producer", "process", "lag", "last good poll", "cursor"], rows, numeric=[2])
    note = (f'<p class="meta">Lag: time since the last good poll ended; over {_duration(r.max_lag_s)} '
            "(STATUS_MAX_LAG_S) it is an alert. Cursor: where the next poll starts.</p>")
    return _section("Producers", table + note, "producers")


def _limits(r: StatusReport) -> str:
    lim = r.limits
    rows = [
        ["Spotler rate (requests/s)", _m("limits.spotler_rate_per_s", lim.spotler_rate_per_s,
                                         f"{lim.spotler_rate_per_s:g}")],
        ["Spotler slots booked ahead", _m("limits.spotler_booked_ahead_s", lim.spotler_booked_ahead_s,
                                          _duration(lim.spotler_booked_ahead_s))],
        ["AFAS calls in flight", _m("limits.afas_in_use", lim.afas_in_use)
         + " / " + _m("limits.afas_limit", lim.afas_limit)],
    ]
    return _section("Rate limits", _table(["limit", "now"], rows, numeric=[1]), "limits")


def _counters(r: StatusReport) -> str:
    if not r.counters:
        return _section("Counters", _empty("nothing written yet"), "counters")
    rows = [[escape(name.replace("_", " ")), _m(f"counter.{name}", n)] for name, n in r.counters.items()]
    return _section("Counters", _table(["counter", "total"], rows, numeric=[1]), "counters")


def _runs(r: StatusReport) -> str:
    parts = []
    producers = {p.source: p for p in r.producers}
    for source, runs in r.runs.items():
        last = producers[source].last_run_id if source in producers else None
        last_html = (f' <span class="meta">last good poll '
                     f'<code>{_m(f"producer.{source}.last_run_id", last, last or "—")}</code></span>'
                     if source in producers else "")
        parts.append(f"<h3>{escape(source)}{last_html}</h3>")
        parts.append(_table(
            ["run", "started", "kind", "read", "changed", "unchanged", "rejected", "enqueued", "written",
             "superseded", "duration"],
            [_run_row(source, run) for run in runs], numeric=range(3, 11),
        ) if runs else _empty("no polls recorded"))
    return _section("Latest runs", "".join(parts), "runs")


def _run_row(source: str, run: PollResult) -> list[str]:
    p = f"run.{source}.{run.run_id}"
    return [
        f"<code>{escape(run.run_id)}</code>", _m(f"{p}.started_at", run.started_at, _time(run.started_at), "muted"),
        _m(f"{p}.kind", run.kind), _m(f"{p}.read", run.read), _m(f"{p}.changed", run.changed),
        _m(f"{p}.unchanged", run.unchanged), _m(f"{p}.rejected", run.rejected),
        _m(f"{p}.enqueued_messages", run.enqueued_messages), _m(f"{p}.written", run.written),
        _m(f"{p}.superseded", run.superseded),
        _m(f"{p}.duration_s", run.duration_s, _duration(run.duration_s)),
    ]


def _by(prefix: str, counts: dict[str, int], label: str) -> str:
    rows = [[escape(key), _m(f"{prefix}.{key}", n)] for key, n in counts.items()]
    return _table([label, "count"], rows, numeric=[1], wrap=[0]) if rows else ""


def _rejections(r: StatusReport) -> str:
    s = r.rejections
    body = f"<p>{_m('rejections.total', s.total)} rejected record(s)</p>" + _by("rejections.by_reason", s.by_reason,
                                                                                "reason")
    if s.latest:
        rows = [[_m(f"rejection.{i}.source", v.source), _m(f"rejection.{i}.contact_id", v.contact_id),
                 _m(f"rejection.{i}.field", v.field), _m(f"rejection.{i}.reason", v.reason),
                 _m(f"rejection.{i}.last_seen", v.last_seen, _time(v.last_seen), "muted")]
                for i, v in enumerate(s.latest)]
        body += "<h3>Latest</h3>" + _table(["source", "contact", "field", "reason", "last seen"], rows, wrap=[3])
    return _section("Rejections", body, "rejections")


def _dead_letters(r: StatusReport) -> str:
    s = r.dead_letters
    body = (f"<p>{_m('dead_letters.total', s.total, cls='warn' if s.total else '')} dead letter(s)</p>"
            + _by("dead_letters.by_queue", s.by_queue, "queue"))
    if s.latest:
        rows = []
        for v in s.latest:
            p = f"dead_letter.{v.id}"
            rows.append([
                f'<code title="{escape(v.id)}">{escape(v.id[:8])}</code>', _m(f"{p}.queue", v.queue),
                _m(f"{p}.entity_key", v.entity_key, v.entity_key or "—"),
                _m(f"{p}.reason", v.reason) + "<br>" + _m(f"{p}.error_class", v.error_class, cls="muted"),
                _m(f"{p}.attempts", v.attempts),
                _m(f"{p}.failed_at", v.failed_at, _time(v.failed_at), "muted"),
                f'<div class="err">{_m(f"{p}.error", v.error)}</div>',
            ])
        body += "<h3>Latest</h3>" + _table(["id", "queue", "entity", "reason", "attempts", "failed", "error"], rows,
                                          numeric=[4])
        body += '<p class="meta">Inspect and replay with <code>connector dlq list</code> / <code>replay</code>.</p>'
    return _section("Dead letters", body, "dead-letters")


def _conflicts(r: StatusReport) -> str:
    s = r.conflicts
    body = f"<p>{_m('conflicts.total', s.total)} settled conflict(s)</p>" + _by("conflicts.by_rule", s.by_rule, "rule")
    if s.latest:
        rows = [[_m(f"conflict.{i}.contact_id", v.contact_id), _m(f"conflict.{i}.field", v.field),
                 _m(f"conflict.{i}.rule", v.rule), _m(f"conflict.{i}.winner", v.winner),
                 _m(f"conflict.{i}.at", v.at, _time(v.at), "muted")]
                for i, v in enumerate(s.latest)]
        body += "<h3>Latest</h3>" + _table(["contact", "field", "rule", "winner", "settled"], rows)
    return _section("Conflicts", body, "conflicts")


def _state(r: StatusReport) -> tuple[str, str]:
    code = _m("exit_code", r.exit_code, "healthy" if not r.alerts else f"{len(r.alerts)} alert(s)",
              cls="badge " + ("ok" if not r.alerts else "bad"))
    alerts = ""
    if r.alerts:
        items = "".join(f"<li>{_m(f'alert.{a.kind}.{a.subject}', a.message)}</li>" for a in r.alerts)
        alerts = f'<div class="alerts"><ul>{items}</ul></div>'
    return code, alerts


def render_page(report: StatusReport, *, refresh_s: int = REFRESH_S) -> str:
    """The whole status page for one report."""
    badge, alerts = _state(report)
    lag_limit = _m("max_lag_s", report.max_lag_s, _duration(report.max_lag_s))
    meta = (f'<span class="meta">{_m("generated_at", report.generated_at, _time(report.generated_at))} · '
            f"times in UTC · refreshes every {refresh_s}s · lag limit {lag_limit}</span>")
    body = (
        f"<header><h1>AFAS ⇄ Spotler connector</h1><div>{badge} {meta} {_SIGN_OUT}</div></header>{alerts}"
        f'<div class="tools">{lookup_form("")}</div>'
        f'<div class="grid top">{_queues(report)}{_producers(report)}</div>'
        f'<div class="grid">{_limits(report)}{_counters(report)}</div>'
        f'<div class="grid">{_runs(report)}</div>'
        f'<div class="grid">{_dead_letters(report)}</div>'
        f'<div class="grid">{_rejections(report)}{_conflicts(report)}</div>'
    )
    return _document("Connector status", body, refresh_s)


_SIGN_OUT = ('<form class="inline" method="post" action="/signout">'
             '<button type="submit" class="link">sign out</button></form>')


def lookup_form(value: str) -> str:
    """A GET form to ``/trace``: one contact's story (``connector.web.trace_page``)."""
    return ('<form class="lookup" method="get" action="/trace"><label for="contact">Trace ContactId</label>'
            f'<input id="contact" name="contact" value="{escape(value)}" maxlength="{MAX_CONTACT_ID}" '
            'required autocomplete="off" spellcheck="false"><button type="submit">Look up</button></form>')


def render_signin(problem: str | None) -> str:
    """The sign-in form: the token is posted once and kept as a cookie, never put in a URL."""
    note = f'<p class="warn">{escape(problem)}</p>' if problem else ""
    body = (
        "<header><h1>AFAS ⇄ Spotler connector</h1></header>"
        f'<section class="signin">{note}<form method="post" action="/signin">'
        '<label for="token">Status token (STATUS_TOKEN)</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>'
        '<button type="submit">Sign in</button></form>'
        '<p class="meta">Tools send <code>Authorization: Bearer &lt;token&gt;</code> instead.</p></section>'
    )
    return _document("Sign in", body, None)


def render_message(title: str, text: str) -> str:
    """A plain page for refusals (no token configured, wrong token)."""
    body = f"<header><h1>{escape(title)}</h1></header><section><p>{escape(text)}</p></section>"
    return _document(title, body, None)


def _document(title: str, body: str, refresh_s: int | None) -> str:
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>{body}</main></body></html>"
    )
