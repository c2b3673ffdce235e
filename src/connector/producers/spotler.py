"""Read Spotler's change and bounce feeds and publish what must go back to AFAS.

A window ``[cursor - overlap, now - safety lag]`` of ``contact/updates/list``
and ``contact/bounces/list`` is read each poll, deduplicated on
``(externalId, lastChanged)``. A contact whose mapped values equal the agreed
state is an echo of our own write and produces nothing. For the rest, the
current AFAS row is read (one GetConnector call per 40 contacts) so that a
change made on both sides is settled by the merge rules, not by who polled
first. Contacts unknown to the link are never created in AFAS.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis

from connector.clients.afas import AfasClient, parse_afas_datetime
from connector.clients.afas_filter import Condition, Filter, Op
from connector.clients.spotler import SpotlerClient
from connector.schemas.events import AfasChange, ContactChange, SpotlerBatch
from connector.schemas.mapping import Mapping
from connector.schemas.runs import PollResult
from connector.schemas.spotler import Contact
from connector.state.agreed import AgreedStore
from connector.state.conflicts import ConflictStore
from connector.state.cursors import CursorStore
from connector.state.rejections import RejectionStore
from connector.state.seen import SeenStore, SeenValues
from connector.sync.diff import change_key, diff
from connector.sync.from_spotler import spotler_values
from connector.sync.merge import decide
from connector.sync.rows import ContactRecord, Rejection, decode_row

__all__ = ["SpotlerProducer"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_CHUNK = 100
_AFAS_IDS_PER_CALL = 40  # keeps the GetConnector query string under AFAS's 2,049 characters
_DEDUP_TTL_S = 2 * 86400


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class SpotlerProducer:
    """Poll logic; I/O goes through the injected clients, Redis and the two enqueue functions."""

    def __init__(
        self,
        spotler: SpotlerClient,
        afas: AfasClient,
        mapping: Mapping,
        redis_client: redis.Redis,
        *,
        enqueue_afas: Callable[[AfasChange], None],
        enqueue_spotler: Callable[[SpotlerBatch], None],
        getconnector: str,
        overlap_s: float = 120.0,
        safety_lag_s: float = 2.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.spotler = spotler
        self.afas = afas
        self.mapping = mapping
        self.redis = redis_client
        self.enqueue_afas = enqueue_afas
        self.enqueue_spotler = enqueue_spotler
        self.getconnector = getconnector
        self.overlap = timedelta(seconds=overlap_s)
        self.safety_lag = timedelta(seconds=safety_lag_s)
        self.clock = clock
        self.cursor = CursorStore(redis_client, "spotler")
        self.agreed = AgreedStore(redis_client)
        self.seen = SeenStore(redis_client)
        self.rejections = RejectionStore(redis_client)
        self.conflicts = ConflictStore(redis_client)

    def window(self) -> tuple[datetime, datetime]:
        end = self.clock() - self.safety_lag
        since = self.cursor.get()
        return (since if since is not None else end) - self.overlap, end

    def poll_once(self) -> PollResult:
        start, end = self.window()
        result = PollResult(
            run_id=uuid.uuid4().hex[:12], source="spotler", started_at=time.time(),
            cursor_from=start.isoformat(),
        )
        t0 = time.perf_counter()
        for contacts in _chunks(self.spotler.iter_updates(start, end), _CHUNK):
            result.read += len(contacts)
            self._handle_contacts(self._first_sightings(contacts), result)
        for bounces in _chunks(self.spotler.iter_bounces(start, end), _CHUNK):
            result.read += len(bounces)
            for bounce in bounces:
                self._handle_bounce(bounce.contact, bounce.type, bounce.date, result)
        self.cursor.set(end)
        result.cursor_to = end.isoformat()
        result.duration_s = time.perf_counter() - t0
        log.info(
            "spotler poll %s: read=%d changed=%d unchanged=%d rejected=%d messages=%d in %.2fs",
            result.run_id, result.read, result.changed, result.unchanged, result.rejected,
            result.enqueued_messages, result.duration_s,
        )
        return result

    def _first_sightings(self, contacts: list[Contact]) -> list[Contact]:
        """Drop (externalId, lastChanged) pairs an earlier, overlapping window already handled."""
        pipe = self.redis.pipeline(transaction=False)
        for c in contacts:
            pipe.set(f"connector:feed:{c.externalId}:{c.lastChanged}", 1, nx=True, ex=_DEDUP_TTL_S)
        return [c for c, fresh in zip(contacts, pipe.execute(), strict=True) if fresh]

    def _afas_rows(self, contact_ids: list[str]) -> dict[str, dict[str, Any]]:
        column = self.mapping.keys.contact_id
        rows: dict[str, dict[str, Any]] = {}
        for ids in _chunks(contact_ids, _AFAS_IDS_PER_CALL):
            flt = Filter.any_of(*[(Condition(column, Op.EQ, int(i) if i.isdigit() else i),) for i in ids])
            for row in self.afas.get_page(self.getconnector, filter=flt, order_by=[column], take=len(ids) + 1):
                rows[str(row.get(column))] = row
        return rows

    def _handle_contacts(self, contacts: list[Contact], result: PollResult) -> None:
        ids = [c.externalId for c in contacts]
        agreed = dict(zip(ids, self.agreed.get_many(ids), strict=True))
        moved: list[tuple[Contact, dict[str, Any]]] = []
        for contact in contacts:
            values = spotler_values(contact, self.mapping)
            before = agreed[contact.externalId]
            if before is None:
                self._reject(contact.externalId, "externalId",
                             "unknown to AFAS: the link never creates contacts in AFAS", result)
            elif not diff(values, before):
                result.unchanged += 1  # our own write coming back, or nothing mapped changed
            else:
                moved.append((contact, values))
        if not moved:
            return
        rows = self._afas_rows([c.externalId for c, _ in moved])
        self.seen.put_many((c.externalId, SeenValues(v, c.lastChanged or 0)) for c, v in moved)
        for contact, values in moved:
            self._decide(contact, values, agreed[contact.externalId], rows.get(contact.externalId), result)

    def _decide(
        self, contact: Contact, values: dict[str, Any], before: dict[str, Any] | None,
        row: dict[str, Any] | None, result: PollResult,
    ) -> None:
        cid = contact.externalId
        record = decode_row(row, self.mapping) if row is not None else None
        if not isinstance(record, ContactRecord):
            reason = record.reason if isinstance(record, Rejection) else "no longer in the AFAS GetConnector"
            self._reject(cid, "externalId", f"cannot write back: {reason}", result)
            return
        decision = decide(
            cid, self.mapping, agreed=before, afas=record.values, spotler=values, blocked=record.blocked,
            afas_time=parse_afas_datetime(record.modified).timestamp() if record.modified else 0.0,
            spotler_time=(contact.lastChanged or 0) / 1000,
        )
        if decision.conflicts:
            self.conflicts.add_many(decision.conflicts)
            for c in decision.conflicts:
                log.info("conflict on contact %s field %s settled by %s: %s wins", cid, c.field, c.rule, c.winner)
        if decision.ignored:
            log.info("contact %s: Spotler edit of one-way field(s) %s not written back",
                     cid, ", ".join(decision.ignored))
        if not decision.to_afas and not decision.to_spotler:
            result.unchanged += 1
            self.seen.forget([cid])
            return
        result.changed += 1
        stamp = str(contact.lastChanged or 0)
        if decision.to_afas:
            self.enqueue_afas(AfasChange(
                contact_id=cid, person_id=record.person_id, organisation_id=record.organisation_id,
                changes=decision.to_afas, key=change_key("spotler", cid, stamp, decision.to_afas),
                last_changed=contact.lastChanged or 0, new_agreed=decision.agreed,
            ))
            result.enqueued_messages += 1
        if decision.to_spotler:
            change = ContactChange(
                contact_id=cid, changes=decision.to_spotler,
                key=change_key("afas-wins", cid, stamp, decision.to_spotler),
                modified=record.modified, person_id=record.person_id,
                organisation_id=record.organisation_id, blocked=record.blocked,
            )
            self.enqueue_spotler(SpotlerBatch(changes=[change], run_id=result.run_id))
            result.enqueued_messages += 1

    def _handle_bounce(self, contact: Contact, kind: str, date: int, result: PollResult) -> None:
        if kind != "HARDBOUNCE":
            result.unchanged += 1  # soft bounces are Spotler's business
            return
        cid = contact.externalId
        if not self.redis.set(f"connector:feed:bounce:{cid}:{date}", 1, nx=True, ex=_DEDUP_TTL_S):
            return
        before = self.agreed.get(cid)
        if before is None:
            self._reject(cid, "bounce", "hard bounce of a contact unknown to AFAS", result)
            return
        person = before.get("_person")
        organisation = before.get("_organisation")
        if not isinstance(person, str) or not isinstance(organisation, str):
            rows = self._afas_rows([cid])
            record = decode_row(rows[cid], self.mapping) if cid in rows else None
            if not isinstance(record, ContactRecord):
                self._reject(cid, "bounce", "hard bounce of a contact no longer in AFAS", result)
                return
            person, organisation = record.person_id, record.organisation_id
        self.enqueue_afas(AfasChange(
            contact_id=cid, person_id=person, organisation_id=organisation, changes={},
            key=change_key("spotler-bounce", cid, str(date), {}), last_changed=date, bounce="HARDBOUNCE",
        ))
        result.changed += 1
        result.enqueued_messages += 1

    def _reject(self, contact_id: str, field: str, reason: str, result: PollResult) -> None:
        self.rejections.add_many([Rejection(contact_id=contact_id, field=field, reason=reason, source="spotler")])
        result.rejected += 1
        result.rejected_by_reason[reason] = result.rejected_by_reason.get(reason, 0) + 1
        log.warning("spotler contact %s rejected: %s", contact_id, reason)
