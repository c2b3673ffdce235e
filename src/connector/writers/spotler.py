"""Apply a batch of AFAS contact changes to Spotler with one ``POST contact/list``.

Each change is claimed by its idempotency key first, so a redelivered message
never writes a contact twice; the per-contact result codes are handled one by
one, so an invalid e-mail rejects that contact only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec
import redis

from connector.clients.spotler import SpotlerClient
from connector.schemas.events import ContactChange
from connector.state.agreed import AgreedStore
from connector.state.seen import SeenStore
from connector.sync.to_spotler import contact_for
from connector.workers.idempotency import Claim, ClaimOutcome, IdempotencyStore

__all__ = ["FATAL_CODES", "BatchOutcome", "write_batch"]

# Per-contact codes that no retry can fix (the record itself is refused).
FATAL_CODES = frozenset(
    {"PROPERTY_INVALID", "CONTACT_ALREADY_EXISTS", "CONTACT_UNKNOWN", "CONTACT_OPTOUT", "NO_ACTIVE_CHANNEL"}
)


class BatchOutcome(msgspec.Struct, kw_only=True):
    """What became of each change of a batch."""

    written: list[ContactChange] = msgspec.field(default_factory=list)
    duplicates: list[ContactChange] = msgspec.field(default_factory=list)
    busy: list[ContactChange] = msgspec.field(default_factory=list)
    retry: list[ContactChange] = msgspec.field(default_factory=list)
    rejected: list[tuple[ContactChange, str, str]] = msgspec.field(default_factory=list)
    requests: int = 0

    def rejected_changes(self) -> list[ContactChange]:
        return [change for change, _, _ in self.rejected]


def write_batch(
    changes: Sequence[ContactChange],
    *,
    client: SpotlerClient,
    claims: IdempotencyStore,
    agreed: AgreedStore,
    redis_client: redis.Redis,
    before_request: Callable[[], object],
    all_bits: Sequence[int] = (),
    lease_s: float = 45.0,
) -> BatchOutcome:
    """Write what is not written yet; raise the client's error if the whole call failed."""
    outcome = BatchOutcome()
    fresh: list[ContactChange] = []
    leases: dict[str, Claim] = {}
    for change in changes:
        claim = claims.claim(change.key, lease_s)
        if claim.outcome is ClaimOutcome.DONE:
            outcome.duplicates.append(change)
        elif claim.outcome is ClaimOutcome.BUSY:
            outcome.busy.append(change)
        else:
            fresh.append(change)
            leases[change.key] = claim
    if not fresh:
        return outcome
    try:
        before_request()
        results = client.upsert_many([contact_for(c, all_bits) for c in fresh])
        outcome.requests += 1
    except BaseException:
        for change in fresh:
            claims.release(leases[change.key])
        raise
    by_id = {r.externalId: r for r in results}
    for change in fresh:
        result = by_id.get(change.contact_id)
        if result is not None and result.code == "OK":
            outcome.written.append(change)
        elif result is not None and result.code in FATAL_CODES:
            outcome.rejected.append((change, result.code, result.message or ""))
            claims.release(leases[change.key])
        else:
            outcome.retry.append(change)
            claims.release(leases[change.key])
    # Agreed state first, then "done": a crash in between only costs a repeated write.
    agreed.merge_many(
        (c.contact_id, {**c.changes, "_person": c.person_id, "_organisation": c.organisation_id})
        for c in outcome.written
    )
    for change in outcome.written:
        claims.done(change.key)
    # Spotler now holds the agreed values: edits noted from its feed are settled or will reappear.
    SeenStore(redis_client).forget(c.contact_id for c in outcome.written)
    done_keys = [f"connector:pending:{c.key}" for c in outcome.written + outcome.rejected_changes()]
    if done_keys:
        redis_client.delete(*done_keys)
    return outcome
