"""One contact's story: its journal, both sides' values read live, the agreed state and a verdict.

``connector trace CONTACT_ID`` and the status page's lookup show the same
``Trace``. Values are shown as the redaction policy shows them (a personal
value as a short digest, so equal values show the same digest), with, per
field, whether AFAS, Spotler and the agreed state hold the same value
(compared on the real values, before masking).

The verdict, first that applies:

- ``forgotten``: ``connector forget`` erased it (the tombstone);
- ``dead-lettered: …``: a dead letter names it (replay it with ``connector dlq``);
- ``rejected: …``: a row or feed item of it is refused until fixed;
- ``waiting: …``: changes of it are on their way (messages in a queue, or
  pending changes in the agreed state whose messages are being worked);
- ``unknown to the link``: no agreed state (never synced, or not in AFAS);
- ``in step``: AFAS, Spotler and the agreed state hold the same values;
- ``differs: …``: a side holds another value than agreed, and nothing is on
  its way: the next poll of that side picks it up (or, for a field that may
  not go back to AFAS, puts AFAS's value back).

A side that cannot be read (no credentials, a fault) is reported as such, and
the rest of the trace is still shown.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
import redis

from connector.redaction import redact, shown_value
from connector.schemas.events import Value
from connector.state.agreed import AgreedStore
from connector.state.journal import Journal, describe
from connector.state.keys import as_bytes
from connector.state.rejections import RejectionStore
from connector.state.tombstones import Tombstones
from connector.workers.dead_letters import DeadLetterStore, contacts_of

__all__ = ["FieldRow", "Side", "Step", "Trace", "build_trace", "queued_messages"]

QUEUE_SCAN_LIMIT = 200_000  # messages looked through per queue for the contact; the rest is not counted


class Step(msgspec.Struct, frozen=True, kw_only=True):
    at: str  # ISO 8601 UTC
    kind: str
    text: str


class FieldRow(msgspec.Struct, frozen=True, kw_only=True):
    field: str
    agreed: str | None
    afas: str | None
    spotler: str | None
    same: bool  # every side that could be read holds the agreed value


class Side(msgspec.Struct, frozen=True, kw_only=True):
    """What one live read gave: values (Spotler-side names) or why there are none."""

    values: dict[str, Value] | None = None
    problem: str | None = None


class Trace(msgspec.Struct, frozen=True, kw_only=True):
    contact_id: str
    verdict: str
    timeline: list[Step]
    fields: list[FieldRow]
    afas: str  # "read", "not listed", or the problem
    spotler: str
    pending: dict[str, list[str]]  # into -> fields on their way
    queued: dict[str, int]  # queue -> messages naming the contact
    dead_letters: list[str]
    rejections: list[str]
    journal_on: bool


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def queued_messages(client: redis.Redis, queue: str, contact_id: str) -> int:
    """Messages of a Dramatiq Redis queue (ready and delayed) whose payload names the contact."""
    pattern = re.compile(rb'"contact_id":\s*"' + re.escape(contact_id.encode()) + rb'"')
    found = 0
    for key in (f"dramatiq:{queue}.msgs", f"dramatiq:{queue}.DQ.msgs"):
        for looked, (_, body) in enumerate(client.hscan_iter(key, count=1000), start=1):
            if pattern.search(as_bytes(cast(bytes, body))):
                found += 1
            if looked >= QUEUE_SCAN_LIMIT:
                break
    return found


def _side_text(side: Side) -> str:
    if side.problem is not None:
        return side.problem
    return "read" if side.values is not None else "not listed"


def build_trace(
    client: redis.Redis, contact_id: str, *, afas: Callable[[str], Side], spotler: Callable[[str], Side],
    queues: tuple[str, ...] = ("spotler", "afas"), now: float | None = None,
) -> Trace:
    """The trace of ``contact_id``; ``afas``/``spotler`` read that side live."""
    now = time.time() if now is None else now
    journal = Journal.for_process(client)
    timeline = [Step(at=_iso(e.at), kind=type(e.step).__name__.lower(), text=redact(describe(e.step)))
                for e in (journal.entries(contact_id, now=now) if journal is not None else [])]
    state = AgreedStore(client).state(contact_id)
    agreed = state.values if state is not None else {}
    a_side, s_side = afas(contact_id), spotler(contact_id)
    pending = {into: sorted(state.pending(into, now)) for into in ("spotler", "afas")} if state is not None else {}
    pending = {k: v for k, v in pending.items() if v}
    queued = {q: n for q in queues if (n := queued_messages(client, q, contact_id))}
    letters = [f"{letter.id} ({letter.queue}, {letter.reason}: {letter.error_class})"
               for letter in DeadLetterStore(client).list(limit=10_000) if contact_id in contacts_of(letter)]
    rejections = [f"{r.source} field {r.field}: {redact(r.reason)}"
                  for r in RejectionStore(client).list() if r.contact_id == contact_id]
    names = sorted({*agreed, *(a_side.values or {}), *(s_side.values or {})})
    rows = []
    for name in names:
        values = [side.values.get(name) for side in (a_side, s_side) if side.values is not None]
        rows.append(FieldRow(
            field=name,
            agreed=_shown(name, agreed, name in agreed),
            afas=_shown(name, a_side.values or {}, a_side.values is not None),
            spotler=_shown(name, s_side.values or {}, s_side.values is not None),
            same=all(v == agreed.get(name) for v in values),
        ))
    verdict = _verdict(
        forgotten=Tombstones(client).forgotten(contact_id), letters=letters, rejections=rejections,
        queued=queued, pending=pending, known=state is not None and state.synced,
        differing=[r.field for r in rows if not r.same],
    )
    return Trace(contact_id=contact_id, verdict=verdict, timeline=timeline, fields=rows,
                 afas=_side_text(a_side), spotler=_side_text(s_side), pending=pending, queued=queued,
                 dead_letters=letters, rejections=rejections, journal_on=journal is not None)


def _shown(name: str, values: dict[str, Value], present: bool) -> str | None:
    if not present:
        return None
    return shown_value(name, values.get(name))


def _verdict(
    *, forgotten: bool, letters: list[str], rejections: list[str], queued: dict[str, int],
    pending: dict[str, list[str]], known: bool, differing: list[str],
) -> str:
    if forgotten:
        return "forgotten: erased by connector forget (tombstone kept)"
    if letters:
        more = f" (+{len(letters) - 1} more)" if len(letters) > 1 else ""
        return f"dead-lettered: {letters[0]}{more}; replay with connector dlq replay"
    if rejections:
        return f"rejected: {rejections[0]}"
    if queued:
        parts = [f"{n} message{'s' if n != 1 else ''} in queue {q}" for q, n in sorted(queued.items())]
        return "waiting: " + ", ".join(parts)
    if pending:
        into = ", ".join(f"{', '.join(fields)} into {q}" for q, fields in sorted(pending.items()))
        return f"waiting: {into} being written"
    if not known:
        return "unknown to the link: no agreed state"
    if differing:
        return f"differs: {', '.join(differing)} (the next poll of the side that moved picks it up)"
    return "in step"


def text_report(trace: Trace) -> str:
    """The trace for a terminal."""
    lines = [f"contact {trace.contact_id}: {trace.verdict}", ""]
    lines.append("timeline:" if trace.timeline else
                 "timeline: (empty)" if trace.journal_on else "timeline: (the journal is off: JOURNAL_MAX_ENTRIES=0)")
    lines += [f"  {s.at}  {s.text}" for s in trace.timeline]
    lines += ["", f"values (AFAS: {trace.afas}; Spotler: {trace.spotler}):"]
    width = max([len(r.field) for r in trace.fields] + [5])
    lines.append(f"  {'field':<{width}}  {'agreed':<18} {'AFAS':<18} {'Spotler':<18}")
    for r in trace.fields:
        mark = "" if r.same else "  <- differs"
        lines.append(f"  {r.field:<{width}}  {_cell(r.agreed):<18} {_cell(r.afas):<18} {_cell(r.spotler):<18}{mark}")
    for into, fields in sorted(trace.pending.items()):
        lines.append(f"on its way into {into}: {', '.join(fields)}")
    for queue, n in sorted(trace.queued.items()):
        lines.append(f"queue {queue}: {n} message(s)")
    lines += [f"dead letter: {d}" for d in trace.dead_letters]
    lines += [f"rejected: {r}" for r in trace.rejections]
    return "\n".join(lines)


def _cell(value: str | None) -> str:
    return "-" if value is None else value


def as_json(trace: Trace) -> str:
    return json.dumps(msgspec.to_builtins(trace), indent=2)


def live_sides(settings: Any, client: redis.Redis) -> tuple[Callable[[str], Side], Callable[[str], Side]]:
    """Readers of AFAS (the GetConnector row) and Spotler (``GET contact``) for a trace."""
    from connector import runtime
    from connector.errors import ConnectorError
    from connector.sync.from_spotler import spotler_values
    from connector.sync.rows import ContactRecord, decode_row

    def afas(contact_id: str) -> Side:
        try:
            settings.require("AFAS_BASE_URL", "AFAS_TOKEN")
            mapping = runtime.mapping(settings)
            with runtime.afas_client(settings, client) as afas_client:
                rows = afas_client.rows_by_ids(settings.afas_getconnector, key=mapping.keys.contact_id,
                                               ids=[contact_id])
        except ConnectorError as exc:
            return Side(problem=f"not read: {redact(str(exc))[:120]}")
        row = rows.get(contact_id)
        if row is None:
            return Side()
        record = decode_row(row, mapping)
        if not isinstance(record, ContactRecord):
            return Side(problem=f"row refused: field {record.field}: {redact(record.reason)}")
        return Side(values=dict(record.values))

    def spotler(contact_id: str) -> Side:
        try:
            settings.require("SPOTLER_BASE_URL", "SPOTLER_KEY", "SPOTLER_SECRET")
            mapping = runtime.mapping(settings)
            with runtime.spotler_client(settings, client) as spotler_client:
                contact = spotler_client.get(contact_id)
        except ConnectorError as exc:
            return Side(problem=f"not read: {redact(str(exc))[:120]}")
        return Side() if contact is None else Side(values=spotler_values(contact, mapping))

    return afas, spotler
