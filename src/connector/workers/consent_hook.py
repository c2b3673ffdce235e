"""The consent trail's hooks in the actors: one call after the write, never raising into the sync.

The write the records describe has landed (or was settled), so an error while
building or storing them is logged and counted (``consent_unrecorded``), never
raised. Each call also drops the records past ``CONSENT_RETENTION_DAYS``.

A permission bit is ``written`` when the agreed state now holds the value
written, ``superseded`` when the ordering check left it out and the agreed
state holds another value; a bit the agreed state already held (a
redelivery of an applied change) and one AFAS has no field for record
nothing. A blocked flag is recorded when it flips in a written change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from connector.redaction import redact
from connector.schemas.events import AfasChange, ContactChange
from connector.state.consent import ConsentRecord, ConsentTrail, Result
from connector.state.keys import COUNTERS
from connector.state.permissions import permission_writes
from connector.writers.afas import HARD_BOUNCE, AfasOutcome
from connector.writers.spotler import BatchOutcome

__all__ = ["to_afas", "to_spotler"]

log = logging.getLogger(__name__)


def _guarded(client: redis.Redis, what: str, build: Callable[[], list[ConsentRecord]], retention_s: float) -> None:
    try:
        trail = ConsentTrail(client, retention_s=retention_s)
        trail.record(build())
        trail.expire()
    except Exception as exc:
        log.warning("consent trail of %s not recorded (%s: %s)", what, type(exc).__name__, redact(str(exc))[:200])
        try:
            client.hincrby(COUNTERS, "consent_unrecorded", 1)
        except Exception:  # Redis itself is gone: the sync's own handling will say so
            log.debug("consent_unrecorded not counted", exc_info=True)


def _row_stamp(change: ContactChange) -> int:
    return max(change.stamps.values(), default=0)


def to_spotler(client: redis.Redis, outcome: BatchOutcome, *, retention_s: float, now_ms: int | None = None) -> None:
    """AFAS's changes of one Spotler batch: permission bits written, superseded or refused, and blocks."""
    applied_at = int(time.time() * 1000) if now_ms is None else now_ms

    def build() -> list[ConsentRecord]:
        groups: list[tuple[list[ContactChange], Result | None]] = [
            (outcome.written, None), (outcome.superseded, "superseded"), (outcome.rejected_changes(), "rejected")]
        records: list[ConsentRecord] = []
        for changes, result in groups:
            writes = permission_writes(client, [(c.contact_id, c.changes, c.new) for c in changes])
            for change in changes:
                for w in writes.get(change.contact_id, []):
                    if result == "superseded" and w.held:
                        continue  # the agreed state holds it already (a redelivery): no change of consent
                    records.append(ConsentRecord(
                        contact_id=change.contact_id, kind="permission", field=w.field, bit=w.bit, new=w.new,
                        old=w.old, source="afas", source_stamp=change.stamps.get(w.field, 0), target="spotler",
                        applied_at=applied_at, result=result or ("written" if w.held else "superseded"),
                    ))
        flips = ConsentTrail(client).blocked_flips((c.contact_id, c.blocked) for c in outcome.written)
        stamps = {c.contact_id: _row_stamp(c) for c in outcome.written}
        records += [ConsentRecord(contact_id=cid, kind="blocked", field="blocked", new=flag, old=not flag,
                                  source="afas", source_stamp=stamps[cid], target="spotler", applied_at=applied_at,
                                  result="written")
                    for cid, flag in flips.items()]
        return records

    if outcome.written or outcome.superseded or outcome.rejected:
        _guarded(client, f"{len(outcome.written)} contacts synced", build, retention_s)


def to_afas(
    client: redis.Redis, change: AfasChange, outcome: AfasOutcome, *, retention_s: float, now_ms: int | None = None,
) -> None:
    """One Spotler change written back to AFAS: its permission bits and its hard bounce."""
    if outcome.forgotten:
        return
    applied_at = int(time.time() * 1000) if now_ms is None else now_ms
    superseded = set(outcome.superseded)

    def build() -> list[ConsentRecord]:
        records: list[ConsentRecord] = []
        for w in permission_writes(client, [(change.contact_id, change.changes, False)]).get(change.contact_id, []):
            if w.field in superseded and not w.held:
                result: Result = "superseded"
            elif w.field not in superseded and w.held and outcome.written:
                result = "written"
            else:
                continue  # held already (a redelivery), or not sent (no write-back target): no change there
            records.append(ConsentRecord(
                contact_id=change.contact_id, kind="permission", field=w.field, bit=w.bit, new=w.new, old=w.old,
                source="spotler", source_stamp=change.stamps.get(w.field, change.last_changed), target="afas",
                applied_at=applied_at, result=result,
            ))
        if change.bounce == HARD_BOUNCE:
            records.append(ConsentRecord(
                contact_id=change.contact_id, kind="hard_bounce", field="bounce", new=True, source="spotler",
                source_stamp=change.last_changed, target="afas", applied_at=applied_at,
                result="rejected" if outcome.bounce_unmapped
                else "written" if "KnContact" in outcome.written else "superseded",
            ))
        return records

    if outcome.written or outcome.superseded or change.bounce == HARD_BOUNCE:
        _guarded(client, f"contact {change.contact_id} written back", build, retention_s)
