"""The AFAS write actor: one message = one Spotler change = one PUT per changed entity."""

from __future__ import annotations

import logging
from collections.abc import Callable

import dramatiq
import msgspec
import redis

from connector import runtime
from connector.clients.afas import AfasClient
from connector.schemas.events import AfasChange
from connector.schemas.mapping import Mapping
from connector.settings import Settings
from connector.state.agreed import AgreedStore
from connector.workers.actor import connector_actor
from connector.workers.idempotency import IdempotencyStore
from connector.workers.limits import ConcurrencyCap, afas_cap
from connector.writers.afas import AfasOutcome, write_change

__all__ = ["AFAS_QUEUE", "AfasDeps", "apply", "apply_afas_change", "build_deps", "declare"]

log = logging.getLogger(__name__)

AFAS_QUEUE = "afas"


class AfasDeps(msgspec.Struct, frozen=True, kw_only=True):
    """The long-lived objects an AFAS worker process writes with."""

    client: AfasClient
    redis: redis.Redis
    mapping: Mapping
    claims: IdempotencyStore
    agreed: AgreedStore
    cap: ConcurrencyCap
    lease_s: float = 120.0


def build_deps(settings: Settings) -> AfasDeps:
    """Client, Redis, mapping, stores and the shared concurrency cap from ``settings``."""
    connection = runtime.redis_client(settings)
    cap = afas_cap(connection, settings)
    return AfasDeps(
        client=runtime.afas_client(settings),
        redis=connection,
        mapping=runtime.mapping(settings),
        claims=IdempotencyStore(connection),
        agreed=AgreedStore(connection),
        cap=cap,
        # A claim must outlive the wait for a slot plus the call itself.
        lease_s=max(120.0, cap.max_wait_s + 3 * settings.http_timeout_s),
    )


@runtime.once
def _deps() -> AfasDeps:
    """Built once per worker process, on its first message."""
    return build_deps(Settings.from_env())


def apply(change: AfasChange, deps: AfasDeps) -> AfasOutcome:
    """Write ``change`` with ``deps`` and log one line with ids (never values)."""
    outcome = write_change(
        change,
        client=deps.client,
        mapping=deps.mapping,
        claims=deps.claims,
        agreed=deps.agreed,
        cap=deps.cap,
        redis_client=deps.redis,
        lease_s=deps.lease_s,
    )
    log.info(
        "contact %s (person %s, organisation %s) key %s: written=%s skipped=%s calls=%d%s",
        change.contact_id,
        change.person_id,
        change.organisation_id,
        change.key,
        ",".join(outcome.written) or "-",
        ",".join(outcome.skipped) or "-",
        outcome.calls,
        " (hard bounce not mapped)" if outcome.bounce_unmapped else "",
    )
    return outcome


def _entity(change: AfasChange) -> str:
    return f"contact:{change.contact_id}"


def declare(broker: dramatiq.Broker | None = None, deps: Callable[[], AfasDeps] = _deps) -> dramatiq.Actor[..., None]:
    """The actor on ``broker`` (default: the global one); tests pass their broker and deps."""

    @connector_actor(queue_name=AFAS_QUEUE, payload=AfasChange, entity_key=_entity, broker=broker, max_retries=10)
    def apply_afas_change(change: AfasChange) -> None:
        """Write one Spotler change back to AFAS: only the entities whose fields changed."""
        apply(change, deps())

    return apply_afas_change


apply_afas_change = declare()
