"""Read AFAS incrementally and publish Spotler upserts for what really changed.

One poll: filter the GetConnector on ``modified >= cursor - lookback`` for the
contact, person and organisation modification columns ORed (so a change to a
person or an organisation is seen in the next poll, not in a 6-hourly full
sync), page through it ordered by ContactId, validate each row, diff it against
the agreed state and enqueue batches of at most 100 changes. The cursor moves
to the poll's start time only after every event of the poll is enqueued.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from connector.clients.afas import AfasClient, page_size_for, parse_afas_datetime
from connector.clients.afas_filter import Condition, Filter, Op
from connector.clients.spotler import SpotlerClient
from connector.schemas.events import ContactChange, SpotlerBatch, Value
from connector.schemas.mapping import Mapping
from connector.schemas.runs import PollResult
from connector.state.agreed import AgreedStore
from connector.state.conflicts import ConflictStore
from connector.state.cursors import CursorStore
from connector.state.rejections import RejectionStore
from connector.state.seen import SeenStore, SeenValues
from connector.sync.diff import change_key, diff
from connector.sync.from_spotler import spotler_values
from connector.sync.merge import decide
from connector.sync.rows import ContactRecord, Rejection, decode_row

__all__ = ["BATCH_SIZE", "AfasProducer", "PollResult"]

log = logging.getLogger(__name__)

BATCH_SIZE = 100  # Spotler's limit for POST contact/list
_PENDING_TTL_S = 3600


class AfasProducer:
    """Poll logic; I/O goes through the injected client, Redis and ``enqueue``."""

    def __init__(
        self,
        client: AfasClient,
        mapping: Mapping,
        redis_client: redis.Redis,
        enqueue: Callable[[SpotlerBatch], None],
        *,
        getconnector: str,
        lookback_s: float = 3900.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        spotler: SpotlerClient | None = None,
        spotler_overlap_s: float = 120.0,
    ) -> None:
        self.client = client
        self.mapping = mapping
        self.redis = redis_client
        self.enqueue = enqueue
        self.getconnector = getconnector
        self.lookback = timedelta(seconds=lookback_s)
        self.clock = clock
        self.spotler = spotler
        self.spotler_overlap = timedelta(seconds=spotler_overlap_s)
        self.cursor = CursorStore(redis_client, "afas")
        self.agreed = AgreedStore(redis_client)
        self.rejections = RejectionStore(redis_client)
        self.seen = SeenStore(redis_client)
        self.conflicts = ConflictStore(redis_client)

    def _filter(self, since: datetime | None) -> Filter | None:
        if since is None:
            return None
        start = since - self.lookback
        return Filter.any_of(*[(Condition(col, Op.GE, start),) for col in self.mapping.keys.modified])

    def _pages(self, since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        return self.client.iter_pages(
            self.getconnector,
            order_by=[self.mapping.keys.contact_id],
            page_size=page_size_for(len(self.mapping.columns)),
            filter=self._filter(since),
        )

    def poll_once(
        self, *, full: bool = False, progress: Callable[[PollResult], None] | None = None
    ) -> PollResult:
        """One pass: incremental from the cursor, or ``full`` over the whole GetConnector."""
        started = self.clock()
        since = None if full else self.cursor.get()
        result = PollResult(
            run_id=uuid.uuid4().hex[:12],
            kind="resync" if full else "poll",
            started_at=started.timestamp(),
            cursor_from=since.isoformat() if since else None,
        )
        t0 = time.perf_counter()
        self._look_at_spotler(started)
        batch: list[ContactChange] = []
        present: set[str] = set()
        column = self.mapping.keys.contact_id
        for rows in self._pages(since):
            if full:
                present.update(str(row.get(column)) for row in rows)
            batch = self._handle_page(rows, batch, result)
            if progress:
                progress(result)
        if full:
            batch = self._handle_gone(present, batch, result)
        self._flush(batch, result)
        # Signpost: never past the poll's start, so edits made during the poll are seen next time.
        self.cursor.set(started)
        result.cursor_to = started.isoformat()
        result.duration_s = time.perf_counter() - t0
        log.info(
            "afas poll %s: read=%d changed=%d unchanged=%d rejected=%d messages=%d in %.2fs",
            result.run_id, result.read, result.changed, result.unchanged, result.rejected,
            result.enqueued_messages, result.duration_s,
        )
        return result

    def _handle_gone(
        self, present: set[str], batch: list[ContactChange], result: PollResult
    ) -> list[ContactChange]:
        """Contacts the link synced that the GetConnector no longer lists (deleted, or filtered out).

        AFAS deletes leave no trace in a modification date, so only a full pass sees them.
        The mapping's ``deletions`` policy decides: ``ignore`` counts them, ``unsubscribe``
        turns every permission bit off in Spotler (the contact stays: Spotler has no delete).
        """
        gone = [cid for cid in self.agreed.contact_ids() if cid not in present]
        result.gone = len(gone)
        if not gone or self.mapping.deletions == "ignore":
            return batch
        bits = {f.name: False for f in self.mapping.fields if f.permission_bit is not None}
        for cid, before in zip(gone, self.agreed.get_many(gone), strict=True):
            changes: dict[str, Value] = {n: v for n, v in bits.items() if (before or {}).get(n) is not False}
            if not changes:
                continue
            batch.append(ContactChange(
                contact_id=cid, changes=changes, key=change_key("afas-gone", cid, result.run_id, changes),
                person_id=str((before or {}).get("_person") or ""),
                organisation_id=str((before or {}).get("_organisation") or ""),
                blocked=True,
            ))
            result.changed += 1
        while len(batch) >= BATCH_SIZE:
            self._flush(batch[:BATCH_SIZE], result)
            batch = batch[BATCH_SIZE:]
        return batch

    def _look_at_spotler(self, now: datetime) -> None:
        """Note Spotler edits the Spotler producer has not handled yet, so a change made on
        both sides is settled by the merge rules whichever producer polls first."""
        if self.spotler is None:
            return
        since = CursorStore(self.redis, "spotler").get() or now
        edited: list[tuple[str, SeenValues]] = []
        for contact in self.spotler.iter_updates(since - self.spotler_overlap, now):
            edited.append((contact.externalId, SeenValues(spotler_values(contact, self.mapping),
                                                          contact.lastChanged or 0)))
        if not edited:
            return
        agreed = self.agreed.get_many([cid for cid, _ in edited])
        self.seen.put_many(
            (cid, seen) for (cid, seen), before in zip(edited, agreed, strict=True)
            if before is not None and diff(seen.values, before)
        )

    def _handle_page(
        self, rows: list[dict[str, Any]], batch: list[ContactChange], result: PollResult
    ) -> list[ContactChange]:
        result.read += len(rows)
        records: list[ContactRecord] = []
        rejections: list[Rejection] = []
        for row in rows:
            decoded = decode_row(row, self.mapping)
            (records if isinstance(decoded, ContactRecord) else rejections).append(decoded)  # type: ignore[arg-type]
        if rejections:
            self.rejections.add_many(rejections)
            result.rejected += len(rejections)
            for r in rejections:
                result.rejected_by_reason[r.reason] = result.rejected_by_reason.get(r.reason, 0) + 1
                log.warning("afas row rejected: contact=%s field=%s reason=%s", r.contact_id, r.field, r.reason)
        keys = self.mapping.keys
        self.rejections.resolve(
            "afas", [r.contact_id for r in records],
            [keys.contact_id, keys.person_id, keys.organisation_id, keys.email],
        )
        ids = [r.contact_id for r in records]
        agreed = self.agreed.get_many(ids)
        seen = self.seen.get_many(ids)
        changes: list[ContactChange] = []
        for record, before, spotler in zip(records, agreed, seen, strict=True):
            delta = self._to_spotler(record, before, spotler)
            if not delta:
                result.unchanged += 1
                continue
            log.debug("contact %s: %s to Spotler", record.contact_id, ", ".join(sorted(delta)))
            changes.append(
                ContactChange(
                    contact_id=record.contact_id,
                    changes=delta,
                    key=change_key("afas", record.contact_id, record.modified, delta),
                    modified=record.modified,
                    person_id=record.person_id,
                    organisation_id=record.organisation_id,
                    new=before is None,
                    blocked=record.blocked,
                )
            )
        fresh = self._not_pending(changes)
        result.already_pending += len(changes) - len(fresh)
        result.changed += len(fresh)
        batch = batch + fresh
        while len(batch) >= BATCH_SIZE:
            self._flush(batch[:BATCH_SIZE], result)
            batch = batch[BATCH_SIZE:]
        return batch

    def _to_spotler(
        self, record: ContactRecord, before: dict[str, Value] | None, spotler: SeenValues | None
    ) -> dict[str, Value]:
        """What Spotler must take from this row, settling fields Spotler changed too."""
        if spotler is None and before is not None and not record.blocked:
            return diff(record.values, before)  # the common case: Spotler has not moved
        decision = decide(
            record.contact_id, self.mapping, agreed=before, afas=record.values,
            spotler=spotler.values if spotler else None, blocked=record.blocked,
            afas_time=parse_afas_datetime(record.modified).timestamp() if record.modified else 0.0,
            spotler_time=spotler.last_changed / 1000 if spotler else 0.0,
        )
        if decision.conflicts:
            self.conflicts.add_many(decision.conflicts)
        return decision.to_spotler

    def _not_pending(self, changes: list[ContactChange]) -> list[ContactChange]:
        """Skip changes already enqueued by an earlier poll and not yet written."""
        if not changes:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for change in changes:
            pipe.set(f"connector:pending:{change.key}", 1, nx=True, ex=_PENDING_TTL_S)
        return [c for c, fresh in zip(changes, pipe.execute(), strict=True) if fresh]

    def _flush(self, batch: list[ContactChange], result: PollResult) -> None:
        if not batch:
            return
        try:
            self.enqueue(SpotlerBatch(changes=batch, run_id=result.run_id))
        except Exception:
            # Not enqueued: let the next poll pick these changes up again.
            self.redis.delete(*[f"connector:pending:{c.key}" for c in batch])
            raise
        result.enqueued_messages += 1
