"""Apply a batch of AFAS contact changes to Spotler with one ``POST contact/list``.

Every contact of the batch goes through the ordering check first
(``connector.state.ordering``): a field older than what was applied since, or
than an edit on its way out of Spotler, is superseded and left out; a contact
whose fields are all superseded costs no request; a contact another worker is
writing is handed back as busy. The per-contact result codes are handled one
by one, so an invalid e-mail rejects that contact only, and only the fields
Spotler accepted are committed to the agreed state, in the same atomic step
that re-checks them.

A forgotten contact (``connector forget``) is left out and counted as
forgotten: nothing is written, nothing recorded.

Spotler's upsert is a blind write. A batch that waited or opts in (``recent`` is given:
a retry, a backlog) first looks at Spotler's changes that the Spotler
producer has not read yet, and leaves out every field a recipient changed
there after the change was made: the Spotler producer will read that edit and
settle it by the merge rules, instead of our older value overwriting it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import msgspec

from connector.clients.spotler import SpotlerClient
from connector.schemas.events import ContactChange, Value, field_writes
from connector.schemas.mapping import Mapping as FieldMapping
from connector.schemas.spotler import Contact
from connector.state.agreed import AgreedStore
from connector.state.doubt import WritesInDoubt
from connector.state.ordering import CommitItem, ContactWrite, Ordering, Owed
from connector.sync.diff import still_seen
from connector.sync.from_spotler import spotler_values
from connector.sync.to_spotler import contact_for
from connector.writers import spotler_doubt
from connector.writers.spotler_doubt import Current

# Spotler's recent changes of some contacts: contact id -> (mapped values, lastChanged epoch ms).
Recent = Callable[[Sequence[str]], Mapping[str, tuple[Mapping[str, Value], int]]]

__all__ = ["FATAL_CODES", "BatchOutcome", "Current", "Recent", "current_contact", "recent_changes", "write_batch"]

log = logging.getLogger(__name__)

# Per-contact codes that no retry can fix (the record itself is refused).
FATAL_CODES = frozenset(
    {"PROPERTY_INVALID", "CONTACT_ALREADY_EXISTS", "CONTACT_UNKNOWN", "CONTACT_OPTOUT", "NO_ACTIVE_CHANNEL"}
)


class BatchOutcome(msgspec.Struct, kw_only=True):
    """What became of each change of a batch."""

    written: list[ContactChange] = msgspec.field(default_factory=list)
    superseded: list[ContactChange] = msgspec.field(default_factory=list)  # nothing of it was still newer
    superseded_fields: int = 0
    busy: list[ContactChange] = msgspec.field(default_factory=list)
    forgotten: list[ContactChange] = msgspec.field(default_factory=list)  # tombstoned: acknowledged, not written
    retry: list[ContactChange] = msgspec.field(default_factory=list)
    rejected: list[tuple[ContactChange, str, str]] = msgspec.field(default_factory=list)
    owed: list[tuple[ContactChange, list[Owed]]] = msgspec.field(default_factory=list)  # re-asserts into AFAS
    requests: int = 0

    def rejected_changes(self) -> list[ContactChange]:
        return [change for change, _, _ in self.rejected]


def _write_of(change: ContactChange) -> ContactWrite:
    return ContactWrite(
        contact_id=change.contact_id, fields=field_writes(change),
        person=change.person_id or None, organisation=change.organisation_id or None,
    )


def write_batch(
    changes: Sequence[ContactChange],
    *,
    client: SpotlerClient,
    ordering: Ordering,
    before_request: Callable[[], object] = lambda: None,
    all_bits: Sequence[int] = (),
    lease_s: float = 90.0,
    recent: Recent | None = None,
    current: Current | None = None,
) -> BatchOutcome:
    """Write what is still newer; raise the client's error if the whole call failed.

    ``current`` (given with ``recent``) reads one contact as Spotler holds it now: the
    batch's opt-ins are marked in doubt until committed, and a redelivered one that a
    recipient undid since it landed is not written (``writers.spotler_doubt``).
    """
    outcome = BatchOutcome()
    writes = [_write_of(c) for c in changes]
    lease = ordering.check("spotler", writes, lease_s=lease_s)
    sending: list[tuple[ContactChange, ContactWrite, CommitItem]] = []
    finished: list[CommitItem] = []  # leased contacts with nothing left to write
    for change, write, verdict in zip(changes, writes, lease.verdicts, strict=True):
        if verdict.forgotten:
            outcome.forgotten.append(change)
            continue
        if verdict.busy:
            outcome.busy.append(change)
            continue
        if verdict.owed:
            outcome.owed.append((change, verdict.owed))
        fresh = set(verdict.fresh)
        kept = msgspec.structs.replace(write, fields=[f for f in write.fields if f.name in fresh])
        item = CommitItem(write=kept, dropped=[f for f in write.fields if f.name not in fresh])
        outcome.superseded_fields += len(item.dropped)
        if fresh:
            sending.append((change, kept, item))
        else:
            outcome.superseded.append(change)
            finished.append(item)
    leased = [w.contact_id for w, v in zip(writes, lease.verdicts, strict=True) if not (v.busy or v.forgotten)]
    doubts, agreed = WritesInDoubt(ordering.client, "spotler"), AgreedStore(ordering.client)
    marked: dict[str, list[str]] = {}
    try:
        if current is not None and sending:
            gone = spotler_doubt.undone_opt_ins(sending, current, doubts, agreed)
            if gone:
                sending = _keep_opt_outs(sending, gone, lease.token, ordering, doubts, outcome, finished)
        if recent is not None and sending:
            before = sum(len(item.dropped) for _, _, item in sending)
            sending, overtaken = _without_newer_spotler_edits(sending, recent, agreed)
            after = sum(len(item.dropped) for _, _, item in (*sending, *overtaken))
            outcome.superseded_fields += after - before
            for change, _, item in overtaken:
                outcome.superseded.append(change)
                finished.append(item)
        if finished:
            ordering.commit("spotler", lease.token, finished)
        if not sending:
            return outcome
        before_request()
        contacts = [
            contact_for(msgspec.structs.replace(change, changes={f.name: f.value for f in kept.fields}), all_bits)
            for change, kept, _ in sending
        ]
        if current is not None:
            marked = spotler_doubt.mark(sending, doubts, agreed)
        try:
            results = client.upsert_many(contacts)
        except Exception as exc:
            landed = spotler_doubt.may_have_landed(exc, marked, recent) if marked else set()
            doubts.clear_many({cid: names for cid, names in marked.items() if cid not in landed})
            raise
        outcome.requests += 1
    except BaseException:
        ordering.release(lease.token, leased)
        raise
    by_id = {r.externalId: r for r in results}
    accepted: list[CommitItem] = []
    for change, _, item in sending:
        result = by_id.get(change.contact_id)
        if result is not None and result.code == "OK":
            outcome.written.append(change)
            accepted.append(item)
        elif result is not None and result.code in FATAL_CODES:
            outcome.rejected.append((change, result.code, result.message or ""))
        else:
            outcome.retry.append(change)
    for applied in ordering.commit("spotler", lease.token, accepted):
        # Written, but something newer was applied while we wrote (our lease had run out).
        outcome.superseded_fields += len(applied.late)
        if applied.owed:
            change = next(c for c in outcome.written if c.contact_id == applied.contact_id)
            outcome.owed.append((change, applied.owed))
    ordering.release(lease.token, [c.contact_id for c in (*outcome.rejected_changes(), *outcome.retry)])
    doubts.clear_many(marked)  # committed, or answered with a refusal: settled either way
    return outcome


def _keep_opt_outs(
    sending: list[Sending], gone: dict[str, dict[str, Value]], token: str, ordering: Ordering,
    doubts: WritesInDoubt, outcome: BatchOutcome, finished: list[CommitItem],
) -> list[Sending]:
    """Record the undone opt-ins as landed (the commit their dead worker never made); owe AFAS the opt-out.

    The agreed state then says what Spotler held after our write, so the unsubscribe is an
    edit to every reader, and the re-assert carries it to AFAS under the ordering rules.
    """
    kept: list[Sending] = []
    landed = [CommitItem(write=msgspec.structs.replace(write, fields=[f for f in write.fields if f.name in
                                                                      gone[change.contact_id]]))
              for change, write, _ in sending if change.contact_id in gone]
    ordering.commit("spotler", token, landed, release=False)
    doubts.clear_many(gone)
    states = dict(zip(gone, AgreedStore(ordering.client).states(list(gone)), strict=True))
    for change, write, item in sending:
        names = gone.get(change.contact_id)
        if not names:
            kept.append((change, write, item))
            continue
        state = states[change.contact_id]
        if state is not None:
            outcome.owed.append((change, [Owed(n, v, state.stamp(n)) for n, v in sorted(names.items())]))
        log.warning("contact %s: %s unsubscribed in Spotler after our unconfirmed opt-in: the opt-out stands",
                    change.contact_id, ", ".join(sorted(names)))
        outcome.superseded_fields += len(names)
        left, later = spotler_doubt.without(write, item, names)
        if left.fields:
            kept.append((change, left, later))
        else:
            outcome.superseded.append(change)
            finished.append(later)
    return kept


def current_contact(client: SpotlerClient, mapping: FieldMapping) -> Current:
    """``Current`` read with ``GET contact/<externalId>``."""

    def current(contact_id: str) -> tuple[Mapping[str, Value], int] | None:
        found = client.get(contact_id)
        return None if found is None else (spotler_values(found, mapping), found.lastChanged or 0)

    return current


Sending = tuple[ContactChange, ContactWrite, CommitItem]


def _without_newer_spotler_edits(
    sending: list[Sending], recent: Recent, agreed: AgreedStore
) -> tuple[list[Sending], list[Sending]]:
    """Leave out the fields Spotler changed (not by us) after our change; contacts with nothing left are overtaken.

    A field whose Spotler value is neither the agreed one nor ours was changed there by
    someone else than the link (a committed write of ours is the agreed value). When it was
    changed is known only up to ``lastChanged``, the contact's latest change, which may be
    a later write of ours to another field: so a ``lastChanged`` after our change leaves
    the field out even when it is our own write's, and the Spotler producer, which reads
    that item too, settles the field by the merge rules (an unsubscribe stays).
    """
    ids = [change.contact_id for change, _, _ in sending]
    seen = recent(ids)
    if not seen:
        return sending, []
    kept: list[Sending] = []
    overtaken: list[Sending] = []
    for (change, write, item), state in zip(sending, agreed.states(ids), strict=True):
        found = seen.get(change.contact_id)
        if found is None or state is None:
            kept.append((change, write, item))
            continue
        values, last_changed = found
        newer = {f.name for f in write.fields
                 if values.get(f.name) not in (state.values.get(f.name), f.value)
                 and not still_seen(change.seen, f.name, values) and last_changed > f.stamp}
        if not newer:
            kept.append((change, write, item))
            continue
        left = msgspec.structs.replace(write, fields=[f for f in write.fields if f.name not in newer])
        later = CommitItem(write=left, dropped=[*item.dropped, *(f for f in write.fields if f.name in newer)])
        (kept if left.fields else overtaken).append((change, left, later))
    return kept, overtaken


def recent_changes(
    client: SpotlerClient, mapping: FieldMapping, since: Callable[[], datetime],
    *, before_request: Callable[[], object] = lambda: None,
) -> Recent:
    """``Recent`` read from Spotler's change feed from ``since()`` (minus 2 s) to now."""

    def recent(contact_ids: Sequence[str]) -> dict[str, tuple[Mapping[str, Value], int]]:
        wanted = set(contact_ids)
        found: dict[str, Contact] = {}
        start = since() - timedelta(seconds=2)
        before_request()
        for item in client.iter_updates(start, datetime.now(UTC) + timedelta(seconds=1)):
            if isinstance(item, Contact) and item.externalId in wanted:
                known = found.get(item.externalId)
                if known is None or (item.lastChanged or 0) >= (known.lastChanged or 0):
                    found[item.externalId] = item
        return {cid: (spotler_values(c, mapping), c.lastChanged or 0) for cid, c in found.items()}

    return recent
