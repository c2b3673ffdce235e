"""Where the link records its events: one call per hook, after the write, never raising into the sync.

Each function builds its events only when this process records events
(``Outbox.for_process``), and an error while building or recording them is
logged and counted (``events_unrecorded``), never raised: the write it
describes has landed, and the sync goes on.

Consent: a written change's permission bits become ``consent.changed`` events
only where the agreed state now holds the value written (a field the ordering
check superseded is no change of consent). ``old`` is the opposite of the new
value for a contact the target knew (a yes/no the link changed was the other
value as the link knew it) and None for a contact new to the target.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import redis

from connector.events.outbox import Outbox
from connector.events.schemas import (
    ChangeDeadLettered,
    ConflictSettled,
    ConsentChanged,
    ContactSynced,
    ContactWrittenBack,
    DomainEvent,
    RecordRejected,
)
from connector.redaction import redact
from connector.schemas.events import AfasChange, ContactChange, Value
from connector.state.keys import COUNTERS
from connector.state.permissions import permission_writes
from connector.sync.merge import Conflict
from connector.sync.rows import Rejection

__all__ = ["conflicts_settled", "dead_lettered", "rejected", "synced_to_spotler", "written_back"]

log = logging.getLogger(__name__)


def _record(client: redis.Redis, what: str, build: Callable[[Outbox], Sequence[DomainEvent]]) -> None:
    outbox = Outbox.for_process(client)
    if outbox is None:
        return
    try:
        events = build(outbox)
        trimmed = outbox.record(events)
    except Exception as exc:
        log.warning("events of %s not recorded (%s: %s)", what, type(exc).__name__, redact(str(exc))[:200])
        try:
            client.hincrby(COUNTERS, "events_unrecorded", 1)
        except Exception:  # Redis itself is gone: the sync's own handling will say so
            log.debug("events_unrecorded not counted", exc_info=True)
        return
    if trimmed:
        log.warning("event outbox full (EVENTS_OUTBOX_MAX=%d): %d oldest unpublished events dropped",
                    outbox.max_len, trimmed)


def _consents(
    client: redis.Redis, system: str, items: Sequence[tuple[str, dict[str, Value], bool]],
) -> dict[str, list[ConsentChanged]]:
    """Per contact, the written permission bits the agreed state now holds (items: contact, changes, new)."""
    return {
        cid: [ConsentChanged(contact_id=cid, system="afas" if system == "afas" else "spotler", field=w.field,
                             bit=w.bit, new=w.new, old=w.old) for w in writes if w.held]
        for cid, writes in permission_writes(client, items).items()
        if any(w.held for w in writes)
    }


def synced_to_spotler(client: redis.Redis, written: Sequence[ContactChange]) -> None:
    """Contacts Spotler accepted in one batch: ``contact.synced``, then their ``consent.changed``, per contact."""
    if not written:
        return

    def build(_: Outbox) -> list[DomainEvent]:
        consents = _consents(client, "spotler", [(c.contact_id, c.changes, c.new) for c in written])
        events: list[DomainEvent] = []
        for change in written:
            events.append(ContactSynced(contact_id=change.contact_id, fields=sorted(change.changes),
                                        created=change.new, reassert=change.reassert))
            events += consents.get(change.contact_id, [])
        return events

    _record(client, f"{len(written)} contacts synced", build)


def written_back(client: redis.Redis, change: AfasChange, connectors: Sequence[str], superseded: Iterable[str]) -> None:
    """A change AFAS accepted (``connectors``: the PUTs it took): ``contact.written_back``, then consents."""
    if not connectors:
        return
    left_out = set(superseded)
    fields = {n: v for n, v in change.changes.items() if n not in left_out}

    def build(_: Outbox) -> list[DomainEvent]:
        consents = _consents(client, "afas", [(change.contact_id, fields, False)])
        return [
            ContactWrittenBack(contact_id=change.contact_id, fields=sorted(fields), connectors=list(connectors),
                               person_id=change.person_id or None, organisation_id=change.organisation_id or None,
                               reassert=change.reassert),
            *consents.get(change.contact_id, []),
        ]

    _record(client, f"contact {change.contact_id} written back", build)


def rejected(client: redis.Redis, rejections: Sequence[Rejection]) -> None:
    """Rejections first seen (or seen with another reason)."""
    if rejections:
        _record(client, f"{len(rejections)} rejections", lambda _: [
            RecordRejected(contact_id=r.contact_id, source=r.source, field=r.field, reason=redact(r.reason))
            for r in rejections
        ])


def dead_lettered(
    client: redis.Redis, *, letter_id: str, contacts: Sequence[str], queue: str, reason: str, error_class: str,
    attempts: int,
) -> None:
    """A stored dead letter: one event per contact it names (one without a contact when it names none)."""
    _record(client, f"dead letter {letter_id}", lambda _: [
        ChangeDeadLettered(contact_id=cid, letter_id=letter_id, queue=queue, reason=reason,
                           error_class=error_class, attempts=attempts)
        for cid in (list(contacts) if contacts else [None])
    ])


def conflicts_settled(client: redis.Redis, conflicts: Sequence[Conflict]) -> None:
    """Conflicts recorded for the first time (both producers may settle the same one)."""
    if conflicts:
        _record(client, f"{len(conflicts)} conflicts", lambda _: [
            ConflictSettled(contact_id=c.contact_id, field=c.field, rule=c.rule, winner=c.winner)
            for c in conflicts
        ])
