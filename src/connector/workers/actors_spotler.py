"""The Spotler write actor: one message = one batch = one ``POST contact/list``."""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime, timedelta

import msgspec
import redis

from connector import runtime
from connector.clients.spotler import SpotlerClient
from connector.errors import RecordRejected, RetriableError
from connector.events import emit
from connector.schemas.events import AfasChange, SpotlerBatch
from connector.schemas.mapping import Mapping
from connector.settings import Settings
from connector.state.agreed import AgreedStore
from connector.state.cursors import CursorStore
from connector.state.keys import COUNTERS, run_outcome
from connector.state.limits import RateLimiter, spotler_rate
from connector.state.ordering import Ordering
from connector.workers import consent_hook, journal_hook
from connector.workers.actor import connector_actor, dead_letter_item, send
from connector.writers.spotler import BatchOutcome, Recent, current_contact, recent_changes, write_batch

__all__ = ["MAX_ITEM_ATTEMPTS", "needs_feed_check", "upsert_batch"]

log = logging.getLogger(__name__)

MAX_ITEM_ATTEMPTS = 6  # per-contact "ERROR" results retried this often, then dead-lettered
RUN_OUTCOME_TTL_S = 7 * 86400


class _Deps(msgspec.Struct, frozen=True):
    client: SpotlerClient
    redis: redis.Redis
    ordering: Ordering
    rate: RateLimiter
    all_bits: tuple[int, ...]
    lease_s: float
    mapping: Mapping
    late_ms: int  # a change older than this has waited: look at Spotler's recent changes first
    consent_retention_s: float


@runtime.once
def _deps() -> _Deps:
    """Built once per worker process, on its first message."""
    settings = Settings.from_env()
    connection = runtime.redis_client(settings)
    rate = spotler_rate(connection, settings)
    client = runtime.spotler_client(settings, connection)  # every call, the catalogue's too, books a slot
    bits = tuple(
        int(entry.bit)
        for prop in client.properties()
        if prop.name == "permissions"
        for entry in (prop.entries or [])
    )
    # The batch's leases outlive the wait for a rate slot plus the call; no longer, so contacts
    # a killed worker held are free again soon.
    return _Deps(client, connection, Ordering(connection), rate, bits, rate.max_wait_s + settings.http_timeout_s + 10,
                 runtime.mapping(settings), int((settings.poll_interval_s + 2) * 1000),
                 settings.consent_retention_days * 86400)


def _waited(batch: SpotlerBatch, late_ms: int) -> bool:
    """A change of an existing contact older than a poll and a bit (retries, a backlog, a fault)."""
    oldest = min((stamp for c in batch.changes if not c.new for stamp in c.stamps.values()), default=None)
    return oldest is not None and oldest < time.time() * 1000 - late_ms


def _turns_a_bit_on(batch: SpotlerBatch) -> bool:
    """An opt-in for an existing contact: written blind, it would overwrite an unsubscribe made since."""
    return any(not c.new and any(name.startswith("permissions.") and value is True
                                 for name, value in c.changes.items())
               for c in batch.changes)


def needs_feed_check(batch: SpotlerBatch, late_ms: int) -> bool:
    """Look at Spotler's unread changes before writing: a batch that waited, or one that opts in.

    An opt-in checked only once it is late would overwrite a recipient's unsubscribe made in
    the seconds between the AFAS edit and the write, and the producer would then read our
    write back as our own: the one loss this link must never have. The check costs one feed
    read per such batch and leaves the race only the time between that read and the write.
    """
    return _waited(batch, late_ms) or _turns_a_bit_on(batch)


def _recent(deps: _Deps) -> Recent:
    """Spotler's changes since the Spotler producer's cursor: what no producer has read yet."""

    def since() -> datetime:
        now = datetime.now(UTC)
        return CursorStore(deps.redis, "spotler").get() or now - timedelta(milliseconds=deps.late_ms)

    return recent_changes(deps.client, deps.mapping, since)  # the client books each page's slot


def _entity(batch: SpotlerBatch) -> str:
    ids = [c.contact_id for c in batch.changes]
    return f"contact:{ids[0]}" if len(ids) == 1 else f"contacts:{ids[0]}..{ids[-1]}({len(ids)})"


@connector_actor(queue_name="spotler", payload=SpotlerBatch, entity_key=_entity, max_retries=10)
def upsert_batch(batch: SpotlerBatch) -> None:
    """Upsert up to 100 contacts; reject, retry or skip each one on its own result."""
    deps = _deps()
    check = needs_feed_check(batch, deps.late_ms)
    outcome = write_batch(
        batch.changes,
        client=deps.client,
        ordering=deps.ordering,
        all_bits=deps.all_bits,
        lease_s=deps.lease_s,
        recent=_recent(deps) if check else None,
        current=current_contact(deps.client, deps.mapping) if check else None,
    )
    _count(deps.redis, batch.run_id, outcome)
    emit.synced_to_spotler(deps.redis, outcome.written)
    consent_hook.to_spotler(deps.redis, outcome, retention_s=deps.consent_retention_s)
    journal_hook.to_spotler(deps.redis, batch, outcome)
    _reassert(deps.redis, batch.run_id, outcome)
    for change, code, message in outcome.rejected:
        dead_letter_item(
            upsert_batch,
            SpotlerBatch(changes=[change], run_id=batch.run_id),
            error=RecordRejected(f"Spotler refused contact {change.contact_id}: {code} {message}".strip(),
                                 key=change.contact_id, code=code),
            entity_key=f"contact:{change.contact_id}",
        )
    log.info(
        "batch %s attempt %d (%s): written=%d superseded=%d fields=%d rejected=%d busy=%d retry=%d forgotten=%d",
        batch.run_id, batch.attempt, _entity(batch), len(outcome.written), len(outcome.superseded),
        outcome.superseded_fields, len(outcome.rejected), len(outcome.busy), len(outcome.retry),
        len(outcome.forgotten),
    )
    if outcome.busy:
        # Another worker holds these contacts for one write: soon free, and not a failure.
        send(upsert_batch, SpotlerBatch(changes=outcome.busy, run_id=batch.run_id, attempt=batch.attempt),
             delay_ms=random.randint(500, 2000))
    if not outcome.retry:
        return
    if batch.attempt + 1 >= MAX_ITEM_ATTEMPTS:
        for change in outcome.retry:
            dead_letter_item(
                upsert_batch,
                SpotlerBatch(changes=[change], run_id=batch.run_id),
                error=RetriableError(f"Spotler kept failing contact {change.contact_id}"),
                entity_key=f"contact:{change.contact_id}",
                reason="exhausted",
            )
        return
    send(upsert_batch, SpotlerBatch(changes=outcome.retry, run_id=batch.run_id, attempt=batch.attempt + 1),
         delay_ms=min(60_000, 1000 * 2 ** batch.attempt))


def _count(client: redis.Redis, run_id: str, outcome: BatchOutcome) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(COUNTERS, "spotler_written", len(outcome.written))
    pipe.hincrby(COUNTERS, "spotler_requests", outcome.requests)
    pipe.hincrby(COUNTERS, "spotler_superseded", outcome.superseded_fields)
    pipe.hincrby(COUNTERS, "spotler_rejected", len(outcome.rejected))
    if outcome.forgotten:
        pipe.hincrby(COUNTERS, "spotler_forgotten", len(outcome.forgotten))
    if run_id:
        pipe.hincrby(run_outcome(run_id), "written", len(outcome.written))
        pipe.hincrby(run_outcome(run_id), "superseded", outcome.superseded_fields)
        pipe.expire(run_outcome(run_id), RUN_OUTCOME_TTL_S)
    pipe.execute()


def _reassert(client: redis.Redis, run_id: str, outcome: BatchOutcome) -> None:
    """Put back into AFAS the values our Spotler write overtook there (see ``state.ordering``)."""
    from connector.workers.actors_afas import apply_afas_change

    agreed = AgreedStore(client)
    for change, owed in outcome.owed:
        person, organisation = change.person_id, change.organisation_id
        if not person or not organisation:
            state = agreed.state(change.contact_id)
            person, organisation = (state.p, state.o) if state is not None else (None, None)
        if not person or not organisation:
            log.warning("contact %s: cannot re-assert %s in AFAS without its person and organisation",
                        change.contact_id, ", ".join(o.name for o in owed))
            continue
        send(apply_afas_change, AfasChange(
            contact_id=change.contact_id, person_id=person, organisation_id=organisation,
            changes={o.name: o.value for o in owed}, stamps={o.name: o.stamp for o in owed},
            bases={o.name: o.stamp for o in owed}, reassert=True, run_id=run_id,
        ))
        log.info("contact %s: %s re-asserted in AFAS", change.contact_id, ", ".join(o.name for o in owed))
