"""Write one Spotler change back to AFAS: one PUT per entity whose fields changed.

``afas_writes`` (the sync core) decides which UpdateConnectors to call and
with which fields; this module makes the calls safely. Each entity write is
claimed under ``<event key>:<connector>``, so a redelivered message (a worker
crash, a retry after a timeout) never writes an entity twice, while an entity
that failed is written on the retry. Every call holds a slot of the shared
AFAS concurrency cap. Errors leave as the client raised them: the retry
policy retries ``RetriableError`` and dead-letters ``FatalError``.

A hard bounce is written where the mapping says (a yes/no field on the
contact, or blocking the contact). With neither configured it is recorded as
a rejection and logged, never turned into an opt-out.
"""

from __future__ import annotations

import logging

import msgspec
import redis

from connector.clients.afas import AfasClient
from connector.errors import RetriableError
from connector.schemas.events import AfasChange, Value
from connector.schemas.mapping import Mapping
from connector.state.agreed import AgreedStore
from connector.state.keys import COUNTERS
from connector.state.rejections import RejectionStore
from connector.state.seen import SeenStore
from connector.sync.rows import Rejection
from connector.sync.to_afas import EntityWrite, afas_writes
from connector.workers.idempotency import ClaimOutcome, IdempotencyStore
from connector.workers.limits import ConcurrencyCap

__all__ = ["HARD_BOUNCE", "UNMAPPED_BOUNCE_REASON", "AfasOutcome", "bounce_unmapped", "write_change"]

log = logging.getLogger(__name__)

HARD_BOUNCE = "HARDBOUNCE"
UNMAPPED_BOUNCE_REASON = "hard bounce: no write-back configured in the mapping"


class AfasOutcome(msgspec.Struct, kw_only=True):
    """What became of one change: the entities written now, and those written before."""

    written: list[str] = msgspec.field(default_factory=list)  # connectors AFAS accepted now
    skipped: list[str] = msgspec.field(default_factory=list)  # written by an earlier delivery
    calls: int = 0  # PUTs sent, a failed one included
    bounce_unmapped: bool = False


def bounce_unmapped(change: AfasChange, mapping: Mapping) -> bool:
    """A hard bounce that the mapping sends nowhere (no yes/no field, no blocking)."""
    rule = mapping.bounce
    return change.bounce == HARD_BOUNCE and not rule.writeback and not rule.block_contact


def _agreed_values(change: AfasChange, writes: list[EntityWrite]) -> dict[str, Value]:
    """What AFAS now holds; fields that cannot go back stay out (AFAS did not take them)."""
    if change.new_agreed:
        return dict(change.new_agreed)
    return {name: change.changes[name] for write in writes for name in write.changed}


def write_change(
    change: AfasChange,
    *,
    client: AfasClient,
    mapping: Mapping,
    claims: IdempotencyStore,
    agreed: AgreedStore,
    cap: ConcurrencyCap,
    redis_client: redis.Redis,
    lease_s: float = 120.0,
) -> AfasOutcome:
    """Write the entities ``change`` touches that are not written yet; raise the client's error."""
    outcome = AfasOutcome()
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
    writes = afas_writes(change, mapping)
    try:
        for write in writes:
            claim = claims.claim(f"{change.key}:{write.connector}", lease_s)
            if claim.outcome is ClaimOutcome.DONE:
                outcome.skipped.append(write.connector)
                continue
            if claim.outcome is ClaimOutcome.BUSY:
                raise RetriableError(
                    f"{write.connector} of contact {change.contact_id} is being written by another worker",
                    retry_after=claim.retry_after,
                )
            try:
                with cap.slot():
                    outcome.calls += 1
                    client.update(write.connector, write.fields)
            except BaseException:
                claims.release(claim)
                raise
            outcome.written.append(write.connector)
            claims.done(claim)
    finally:
        # Counted even when a later entity fails: every call costs AFAS capacity.
        if outcome.calls:
            redis_client.hincrby(COUNTERS, "afas_calls", outcome.calls)
    values = _agreed_values(change, writes)
    if values:
        # Also after a redelivery that skipped every entity: the first delivery may
        # have died between its last write and this line.
        agreed.merge_many([(change.contact_id, values)])
    # AFAS now holds what Spotler said: the edit noted from Spotler's feed is settled.
    SeenStore(redis_client).forget([change.contact_id])
    pipe = redis_client.pipeline(transaction=False)
    if outcome.written:
        pipe.hincrby(COUNTERS, "afas_changes_written", 1)
    elif outcome.skipped:
        pipe.hincrby(COUNTERS, "afas_duplicates_skipped", 1)
    if outcome.bounce_unmapped:
        pipe.hincrby(COUNTERS, "afas_bounces_unmapped", 1)
    if len(pipe):
        pipe.execute()
    return outcome
