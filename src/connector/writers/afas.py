"""Write one Spotler change back to AFAS: one PUT per entity whose fields changed.

The change first goes through the ordering check (``connector.state.ordering``):
fields older than what was applied since, or than an AFAS edit on its way to
Spotler, are superseded and never sent; a contact another worker is writing
is retried later (a ``RateLimited``, which does not burn the retry budget).
``afas_writes`` (the sync core) then decides which UpdateConnectors to call
with the fresh fields. Each entity's fields are committed to the agreed state
as soon as AFAS accepted that entity, so a redelivery after a partial write
(a worker crash, a retry after a timeout) finds those fields applied and
writes only the rest. Errors leave as the client raised them: the retry policy
retries ``RetriableError`` and dead-letters ``FatalError``. Every call goes
through the client, which holds a slot of the shared AFAS concurrency cap.

A change of a forgotten contact (``connector forget``) is acknowledged as
forgotten: no call, nothing recorded.

A hard bounce is an event, not a field: it is written every time it is
delivered (setting a flag twice is harmless), where the mapping says (a
yes/no field on the contact, or blocking the contact). With neither
configured it is recorded as a rejection and logged, never turned into an
opt-out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import redis

from connector.clients.afas import AfasClient
from connector.errors import ConnectorError, RateLimited
from connector.schemas.events import AfasChange, Value, field_writes
from connector.schemas.mapping import Mapping
from connector.state import doubt
from connector.state.agreed import AgreedStore
from connector.state.doubt import Doubt, WritesInDoubt
from connector.state.keys import COUNTERS
from connector.state.ordering import CommitItem, ContactWrite, Ordering, Owed
from connector.state.rejections import RejectionStore
from connector.sync.diff import still_seen
from connector.sync.rows import ContactRecord, Rejection, decode_row
from connector.sync.to_afas import afas_writes

__all__ = ["HARD_BOUNCE", "UNMAPPED_BOUNCE_REASON", "AfasOutcome", "bounce_unmapped", "write_change"]

log = logging.getLogger(__name__)

HARD_BOUNCE = "HARDBOUNCE"
UNMAPPED_BOUNCE_REASON = "hard bounce: no write-back configured in the mapping"


class AfasOutcome(msgspec.Struct, kw_only=True):
    """What became of one change."""

    written: list[str] = msgspec.field(default_factory=list)  # connectors AFAS accepted now
    superseded: list[str] = msgspec.field(default_factory=list)  # fields not written: something newer won
    calls: int = 0  # PUTs sent, a failed one included
    bounce_unmapped: bool = False
    forgotten: bool = False  # the contact has a tombstone: nothing written
    owed: list[Owed] = msgspec.field(default_factory=list)  # values to re-assert in Spotler


def bounce_unmapped(change: AfasChange, mapping: Mapping) -> bool:
    """A hard bounce that the mapping sends nowhere (no yes/no field, no blocking)."""
    rule = mapping.bounce
    return change.bounce == HARD_BOUNCE and not rule.writeback and not rule.block_contact


def write_change(
    change: AfasChange,
    *,
    client: AfasClient,
    mapping: Mapping,
    ordering: Ordering,
    redis_client: redis.Redis,
    lease_s: float = 75.0,
    recent: Callable[[str], dict[str, Any] | None] | None = None,
) -> AfasOutcome:
    """Write the fresh fields of ``change`` entity by entity; raise the client's error.

    ``lease_s`` covers one call (a wait for a slot of the cap plus the call): the lease
    on the contact is renewed before each entity, so a worker that dies holds the
    contact for at most that long. ``recent`` (for a change that waited) reads the
    contact's current AFAS row: a field someone changed in AFAS after the change was
    made is left out, for the AFAS producer to settle by the merge rules.
    """
    outcome = AfasOutcome()
    write = ContactWrite(contact_id=change.contact_id, fields=field_writes(change),
                         person=change.person_id, organisation=change.organisation_id)
    lease = ordering.check("afas", [write], lease_s=lease_s)
    [verdict] = lease.verdicts
    if verdict.forgotten:
        outcome.forgotten = True
        redis_client.hincrby(COUNTERS, "afas_forgotten", 1)
        return outcome
    if verdict.busy_ms is not None:
        # The other writer holds the lease for one write, not for its whole length: try again soon.
        raise RateLimited(f"contact {change.contact_id} is being written by another worker",
                          retry_after=min(2.0, max(0.2, verdict.busy_ms / 1000)))
    if bounce_unmapped(change, mapping):
        outcome.bounce_unmapped = True
        RejectionStore(redis_client).add_many(
            [Rejection(contact_id=change.contact_id, field="bounce", reason=UNMAPPED_BOUNCE_REASON, source="spotler")]
        )
        log.warning(
            "contact %s: hard bounce not written to AFAS (the mapping has no bounce.writeback "
            "or bounce.block_contact); recorded as a rejection",
            change.contact_id,
        )
    outcome.owed += verdict.owed
    fresh = set(verdict.fresh)
    doubts = WritesInDoubt(redis_client, "afas")
    undone: dict[str, Value] = {}
    if recent is not None and fresh:
        try:
            marks = doubts.marks(change.contact_id) if _opt_ins(change, fresh) else {}
            edited, undone = _changed_in_afas_since(change, write, fresh, recent, ordering, mapping, marks)
            fresh -= edited | undone.keys()
            if undone:
                outcome.owed += _keep_afas_opt_outs(write, undone, lease.token, ordering, doubts)
        except BaseException:
            ordering.release(lease.token, [change.contact_id])
            raise
    outcome.superseded = sorted(f.name for f in write.fields if f.name not in fresh)
    entities = afas_writes(msgspec.structs.replace(change, changes={n: change.changes[n] for n in fresh}), mapping)
    sent: set[str] = set()
    try:
        for entity in entities:
            if outcome.calls:
                ordering.renew(lease.token, change.contact_id, lease_s=lease_s)
            outcome.calls += 1
            opt_ins = _opt_ins(change, entity.changed)
            if opt_ins:
                current = AgreedStore(redis_client).state(change.contact_id)
                doubts.mark(change.contact_id, dict.fromkeys(opt_ins, True), int(time.time() * 1000),
                            {n: current.stamp(n) if current is not None else 0 for n in opt_ins})
            try:
                client.update(entity.connector, entity.fields)
            except Exception as exc:
                if opt_ins and not _may_have_landed(exc, change.contact_id, opt_ins, recent, mapping):
                    doubts.clear(change.contact_id, opt_ins)
                raise
            outcome.written.append(entity.connector)
            done = [f for f in write.fields if f.name in entity.changed]
            sent.update(entity.changed)
            if done:
                for applied in ordering.commit("afas", lease.token, [
                    CommitItem(write=msgspec.structs.replace(write, fields=done))], release=False):
                    outcome.owed += applied.owed
                    outcome.superseded += applied.late
            doubts.clear(change.contact_id, opt_ins)
    finally:
        # Counted even when a later entity fails: every call costs AFAS capacity.
        if outcome.calls:
            redis_client.hincrby(COUNTERS, "afas_calls", outcome.calls)
        ordering.release(lease.token, [change.contact_id])
    # Fresh fields AFAS cannot take (no write-back target) are dropped with the superseded ones.
    dropped = [f for f in write.fields if f.name not in sent]
    ordering.commit("afas", "", [CommitItem(write=msgspec.structs.replace(write, fields=[]), dropped=dropped)],
                    release=False)
    pipe = redis_client.pipeline(transaction=False)
    if outcome.written:
        pipe.hincrby(COUNTERS, "afas_changes_written", 1)
    if outcome.superseded:
        pipe.hincrby(COUNTERS, "afas_superseded", len(outcome.superseded))
    if outcome.bounce_unmapped:
        pipe.hincrby(COUNTERS, "afas_bounces_unmapped", 1)
    if len(pipe):
        pipe.execute()
    return outcome


def _changed_in_afas_since(
    change: AfasChange, write: ContactWrite, fresh: set[str],
    recent: Callable[[str], dict[str, Any] | None], ordering: Ordering, mapping: Mapping,
    marks: dict[str, Doubt],
) -> tuple[set[str], dict[str, Value]]:
    """Fresh fields AFAS's current row holds a newer value of than the agreed state (we hold the lease).

    Also returns the opt-ins an AFAS user undid after our unconfirmed write of them landed
    (``connector.state.doubt``), with AFAS's value.
    """
    row = recent(change.contact_id)
    record = decode_row(row, mapping) if row is not None else None
    state = AgreedStore(ordering.client).state(change.contact_id)
    if not isinstance(record, ContactRecord) or state is None:
        return set(), {}
    stamps = {f.name: f.stamp for f in write.fields}
    ours = {f.name: f.value for f in write.fields}
    undone = {n: record.values.get(n) for n in fresh
              if doubt.undone(marks.get(n), ours.get(n), state.stamp(n), record.values.get(n), record.stamp)}
    # Neither the agreed value nor ours: an AFAS user's edit (the row's stamp also moves with our own
    # writes to the contact's other entities, so a later stamp does not make it ours).
    edited = {n for n in fresh
              if record.values.get(n) not in (state.values.get(n), ours.get(n))
              and not still_seen(change.seen, n, record.values) and record.stamp > stamps.get(n, 0)}
    return edited - undone.keys(), undone


def _opt_ins(change: AfasChange, names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if n.startswith("permissions.") and change.changes.get(n) is True)


def _keep_afas_opt_outs(
    write: ContactWrite, undone: dict[str, Value], token: str, ordering: Ordering, doubts: WritesInDoubt,
) -> list[Owed]:
    """Record our earlier opt-in as landed (the commit its dead worker never made) and owe Spotler AFAS's opt-out.

    The agreed state then says what AFAS held after our write, so AFAS's opt-out is an edit
    to every reader, and the re-assert carries it to Spotler under the ordering rules.
    """
    kept = [f for f in write.fields if f.name in undone]
    [applied] = ordering.commit("afas", token, [CommitItem(write=msgspec.structs.replace(write, fields=kept))],
                                release=False)
    doubts.clear(write.contact_id, undone)
    state = AgreedStore(ordering.client).state(write.contact_id)
    log.warning("contact %s: %s opted out in AFAS after our unconfirmed opt-in: the opt-out stands",
                write.contact_id, ", ".join(sorted(undone)))
    if state is None:
        return applied.owed
    return applied.owed + [Owed(n, undone[n], state.stamp(n)) for n in applied.applied]


def _may_have_landed(
    exc: Exception, contact_id: str, opt_ins: list[str],
    recent: Callable[[str], dict[str, Any] | None] | None, mapping: Mapping,
) -> bool:
    """A failed opt-in PUT that may have reached AFAS: no answer, and a read cannot show otherwise."""
    if isinstance(exc, ConnectorError) and exc.status is not None and exc.status not in (502, 504):
        return False  # AFAS answered: the write did not happen
    if recent is None:
        return True
    try:
        row = recent(contact_id)
    except Exception:
        return True
    record = decode_row(row, mapping) if row is not None else None
    return not isinstance(record, ContactRecord) or any(record.values.get(n) is True for n in opt_ins)
