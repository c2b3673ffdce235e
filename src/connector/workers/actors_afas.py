"""The AFAS write actor: one message = one Spotler change = one PUT per changed entity."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import dramatiq
import msgspec
import redis

from connector import runtime
from connector.clients.afas import AfasClient
from connector.events import emit
from connector.schemas.events import AfasChange, ContactChange, SpotlerBatch
from connector.schemas.mapping import Mapping
from connector.settings import Settings
from connector.state.keys import run_outcome
from connector.state.limits import afas_cap
from connector.state.ordering import Ordering
from connector.workers import consent_hook, journal_hook
from connector.workers.actor import connector_actor, send
from connector.writers.afas import AfasOutcome, write_change

__all__ = ["AFAS_QUEUE", "AfasDeps", "apply", "apply_afas_change", "build_deps", "declare", "needs_row_check"]

log = logging.getLogger(__name__)

AFAS_QUEUE = "afas"


class AfasDeps(msgspec.Struct, frozen=True, kw_only=True):
    """The long-lived objects an AFAS worker process writes with."""

    client: AfasClient
    redis: redis.Redis
    mapping: Mapping
    ordering: Ordering
    lease_s: float = 75.0
    getconnector: str = "Spotler_Contacts"
    late_ms: int = 32_000  # a change older than this has waited: read the AFAS row first
    consent_retention_s: float = 730 * 86400.0


def build_deps(settings: Settings) -> AfasDeps:
    """Client (under the shared concurrency cap), Redis, mapping and the ordering check from ``settings``."""
    connection = runtime.redis_client(settings)
    cap = afas_cap(connection, settings)
    return AfasDeps(
        client=runtime.afas_client(settings, connection),
        redis=connection,
        mapping=runtime.mapping(settings),
        ordering=Ordering(connection),
        # A contact's lease (renewed per entity) outlives one wait for a slot plus one call;
        # no longer, so a contact a killed worker held is free again soon.
        lease_s=cap.max_wait_s + settings.http_timeout_s + 15,
        getconnector=settings.afas_getconnector,
        late_ms=int((settings.poll_interval_s + 2) * 1000),
        consent_retention_s=settings.consent_retention_days * 86400,
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
        ordering=deps.ordering,
        redis_client=deps.redis,
        lease_s=deps.lease_s,
        recent=_row_reader(deps) if needs_row_check(change, deps.late_ms) else None,
    )
    emit.written_back(deps.redis, change, outcome.written, outcome.superseded)
    consent_hook.to_afas(deps.redis, change, outcome, retention_s=deps.consent_retention_s)
    journal_hook.to_afas(deps.redis, change, outcome)
    if change.run_id:
        pipe = deps.redis.pipeline(transaction=False)
        pipe.hincrby(run_outcome(change.run_id), "written", 1 if outcome.written else 0)
        pipe.hincrby(run_outcome(change.run_id), "superseded", len(outcome.superseded))
        pipe.expire(run_outcome(change.run_id), 7 * 86400)
        pipe.execute()
    if outcome.owed:
        _reassert(change, outcome)
    if outcome.forgotten:
        log.info("contact %s: forgotten (connector forget), change dropped", change.contact_id)
        return outcome
    log.info(
        "contact %s (person %s, organisation %s)%s: written=%s superseded=%s calls=%d%s",
        change.contact_id,
        change.person_id,
        change.organisation_id,
        " re-assert" if change.reassert else "",
        ",".join(outcome.written) or "-",
        ",".join(outcome.superseded) or "-",
        outcome.calls,
        " (hard bounce not mapped)" if outcome.bounce_unmapped else "",
    )
    return outcome


def _waited(change: AfasChange, late_ms: int) -> bool:
    """A change older than a poll and a bit (retries, a backlog, a fault)."""
    oldest = min(change.stamps.values(), default=None)
    return oldest is not None and oldest < time.time() * 1000 - late_ms


def needs_row_check(change: AfasChange, late_ms: int) -> bool:
    """Read the AFAS row before writing: a change that waited, or one that opts in.

    The PUT is a blind write. A Spotler opt-in written back seconds after an AFAS
    user opted the contact out would overwrite that opt-out, and the AFAS producer
    would then read our write as our own. One GetConnector call per opt-in (under
    the AFAS cap) leaves the race only the time between that read and the PUT.
    """
    opts_in = any(name.startswith("permissions.") and value is True for name, value in change.changes.items())
    return opts_in or _waited(change, late_ms)


def _row_reader(deps: AfasDeps) -> Callable[[str], dict[str, Any] | None]:
    key = deps.mapping.keys.contact_id

    def row(contact_id: str) -> dict[str, Any] | None:
        return deps.client.rows_by_ids(deps.getconnector, key=key, ids=[contact_id]).get(contact_id)

    return row


def _reassert(change: AfasChange, outcome: AfasOutcome) -> None:
    """Put back into Spotler the values our AFAS write overtook there (see ``state.ordering``)."""
    from connector.workers.actors_spotler import upsert_batch

    owed = outcome.owed
    send(upsert_batch, SpotlerBatch(run_id=change.run_id, changes=[ContactChange(
        contact_id=change.contact_id, person_id=change.person_id, organisation_id=change.organisation_id,
        changes={o.name: o.value for o in owed}, stamps={o.name: o.stamp for o in owed},
        bases={o.name: o.stamp for o in owed}, reassert=True,
    )]))
    log.info("contact %s: %s re-asserted in Spotler", change.contact_id, ", ".join(o.name for o in owed))


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
