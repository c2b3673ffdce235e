"""The Spotler write actor: one message = one batch = one ``POST contact/list``."""

from __future__ import annotations

import logging

import msgspec
import redis

from connector import runtime
from connector.clients.spotler import SpotlerClient
from connector.errors import RecordRejected, RetriableError
from connector.schemas.events import SpotlerBatch
from connector.settings import Settings
from connector.state.agreed import AgreedStore
from connector.state.keys import COUNTERS
from connector.workers.actor import connector_actor, dead_letter_item, send
from connector.workers.idempotency import IdempotencyStore
from connector.workers.limits import RateLimiter, spotler_rate
from connector.writers.spotler import write_batch

__all__ = ["MAX_ITEM_ATTEMPTS", "upsert_batch"]

log = logging.getLogger(__name__)

MAX_ITEM_ATTEMPTS = 6  # per-contact "ERROR" results retried this often, then dead-lettered


class _Deps(msgspec.Struct, frozen=True):
    client: SpotlerClient
    redis: redis.Redis
    claims: IdempotencyStore
    agreed: AgreedStore
    rate: RateLimiter
    all_bits: tuple[int, ...]


@runtime.once
def _deps() -> _Deps:
    """Built once per worker process, on its first message."""
    settings = Settings.from_env()
    client = runtime.spotler_client(settings)
    connection = runtime.redis_client(settings)
    rate = spotler_rate(connection, settings)
    bits = tuple(
        int(entry.bit)
        for prop in client.properties()
        if prop.name == "permissions"
        for entry in (prop.entries or [])
    )
    return _Deps(client, connection, IdempotencyStore(connection), AgreedStore(connection), rate, bits)


def _entity(batch: SpotlerBatch) -> str:
    ids = [c.contact_id for c in batch.changes]
    return f"contact:{ids[0]}" if len(ids) == 1 else f"contacts:{ids[0]}..{ids[-1]}({len(ids)})"


@connector_actor(queue_name="spotler", payload=SpotlerBatch, entity_key=_entity, max_retries=10)
def upsert_batch(batch: SpotlerBatch) -> None:
    """Upsert up to 100 contacts; reject, retry or skip each one on its own result."""
    deps = _deps()
    outcome = write_batch(
        batch.changes,
        client=deps.client,
        claims=deps.claims,
        agreed=deps.agreed,
        redis_client=deps.redis,
        before_request=deps.rate.acquire,
        all_bits=deps.all_bits,
    )
    pipe = deps.redis.pipeline(transaction=False)
    pipe.hincrby(COUNTERS, "spotler_written", len(outcome.written))
    pipe.hincrby(COUNTERS, "spotler_requests", outcome.requests)
    pipe.hincrby(COUNTERS, "spotler_duplicates_skipped", len(outcome.duplicates))
    pipe.hincrby(COUNTERS, "spotler_rejected", len(outcome.rejected))
    pipe.execute()
    for change, code, message in outcome.rejected:
        dead_letter_item(
            upsert_batch,
            SpotlerBatch(changes=[change], run_id=batch.run_id),
            error=RecordRejected(f"Spotler refused contact {change.contact_id}: {code} {message}".strip(),
                                 key=change.contact_id, code=code),
            entity_key=f"contact:{change.contact_id}",
        )
    again = outcome.retry + outcome.busy
    log.info(
        "batch %s attempt %d (%s): written=%d duplicates=%d rejected=%d busy=%d retry=%d",
        batch.run_id, batch.attempt, _entity(batch), len(outcome.written), len(outcome.duplicates),
        len(outcome.rejected), len(outcome.busy), len(outcome.retry),
    )
    if not again:
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
        again = outcome.busy
    if again:
        delay_ms = min(60_000, 1000 * 2 ** batch.attempt)
        send(upsert_batch, SpotlerBatch(changes=again, run_id=batch.run_id, attempt=batch.attempt + 1),
             delay_ms=delay_ms)
