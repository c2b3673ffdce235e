"""Read AFAS incrementally and publish Spotler upserts for what really changed.

One poll: filter the GetConnector on ``modified >= cursor - lookback`` for the
contact, person and organisation modification columns ORed (so a change to a
person or an organisation is seen in the next poll, not in a 6-hourly full
sync), page through it by key (``ContactId > last``), decode each row on its
own, diff it against the agreed state and hand the changes to the sink, which
enqueues them in batches of at most 100 and only then notes them as pending.
The cursor moves to the poll's start only after the last page was flushed; a
poll that fails part-way leaves the cursor where it was. Without a cursor (the
first sync, or a Redis that lost its data) the whole GetConnector is read.

Every field of a change carries the row's newest modification date as its
stamp and the agreed stamp it was decided on (see ``connector.state.ordering``).
A row that cannot be read (a bad value, or any unexpected error while deciding
it) becomes a rejection with its field and reason; the rest of the page goes on.

A forgotten contact (``connector forget``, a tombstone) is skipped, row and
rejection alike. After each poll the retention sweep runs
(``connector.state.retention``) and departed contacts gone for
``forget_after_s`` are forgotten (``connector.producers.deletions``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import redis

from connector.clients.afas import AfasClient, page_size_for
from connector.clients.afas_filter import Condition, Filter, Op
from connector.clients.spotler import MAX_PAGE_SIZE, SpotlerClient
from connector.producers.deletions import DeletionsHeld, forget_departed, gone_contacts, unsubscribes
from connector.producers.known import (
    CLOCK_MARGIN_MS,
    SpotlerSeen,
    already_pending,
    is_echo,
    spotler_view,
    touched,
)
from connector.producers.sink import Sink
from connector.redaction import redact_exception
from connector.schemas.events import AfasChange, ContactChange, Value
from connector.schemas.mapping import Mapping
from connector.schemas.runs import PollResult
from connector.schemas.spotler import Contact
from connector.state.agreed import AgreedStore, ContactState
from connector.state.beaten import BeatenValues, unbeaten
from connector.state.cursors import CursorStore
from connector.state.departed import Departed
from connector.state.journal import Seen
from connector.state.ordering import ContactWrite, FieldWrite, Ordering
from connector.state.retention import sweep
from connector.state.tombstones import Tombstones
from connector.sync.diff import diff
from connector.sync.from_spotler import spotler_values
from connector.sync.merge import Decision, decide_row
from connector.sync.rows import ContactRecord, Rejection, decode_row

__all__ = ["AfasProducer", "DeletionsHeld", "PollResult"]

log = logging.getLogger(__name__)


class AfasProducer:
    """Poll logic; I/O goes through the injected clients, the agreed state (read) and the sink."""

    def __init__(
        self,
        client: AfasClient,
        mapping: Mapping,
        redis_client: redis.Redis,
        sink: Sink,
        *,
        getconnector: str,
        lookback_s: float = 3900.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        spotler: SpotlerClient | None = None,
        spotler_overlap_s: float = 120.0,
        deletions_max_share: float = 0.05,
        allow_deletions: bool = False,
        forget_after_s: float = 30 * 86400,
        retention_s: float = 30 * 86400,
        consent_retention_s: float = 730 * 86400,
        housekeeping: bool = True,
    ) -> None:
        self.client = client
        self.mapping = mapping
        self.redis = redis_client
        self.sink = sink
        self.getconnector = getconnector
        self.lookback = timedelta(seconds=lookback_s)
        self.clock = clock
        self.spotler = spotler
        self.spotler_overlap = timedelta(seconds=spotler_overlap_s)
        self.deletions_max_share = deletions_max_share
        self.allow_deletions = allow_deletions
        self.forget_after_s = forget_after_s
        self.retention_s = retention_s
        self.consent_retention_s = consent_retention_s
        self.housekeeping = housekeeping  # departures and retention; off for a dry run, which writes nothing
        self.tombstones = Tombstones(redis_client)
        self.departed = Departed(redis_client)
        self.cursor = CursorStore(redis_client, "afas")
        self.agreed = AgreedStore(redis_client)
        self.beaten = BeatenValues(redis_client)
        self.ordering = Ordering(redis_client)
        self.spotler_seen = 0  # contacts in Spotler's recent feed at the last poll
        self.looked_at = 0  # Redis's clock when that feed was read

    def _filter(self, since: datetime | None) -> Filter | None:
        if since is None:
            return None
        start = since - self.lookback
        return Filter.any_of(*[(Condition(col, Op.GE, start),) for col in self.mapping.keys.modified])

    def _pages(self, since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        return self.client.iter_pages(
            self.getconnector,
            key=self.mapping.keys.contact_id,
            page_size=page_size_for(len(self.mapping.columns)),
            filter=self._filter(since),
        )

    def poll_once(
        self, *, full: bool = False, progress: Callable[[PollResult], None] | None = None
    ) -> PollResult:
        """One pass: incremental from the cursor, or ``full`` over the whole GetConnector."""
        started = self.clock()
        since = None if full else self.cursor.get()
        if since is None and not full:
            log.warning("no AFAS cursor (a first sync, or Redis lost its data): reading the whole GetConnector")
        result = PollResult(
            run_id=uuid.uuid4().hex[:12],
            kind="resync" if full else "poll",
            started_at=started.timestamp(),
            cursor_from=since.isoformat() if since else None,
        )
        t0 = time.perf_counter()
        # Read on the first row that needs it: a poll that finds no AFAS change spends none of the
        # Spotler rate the workers write with (during a first sync, every poll after the pass).
        spotler = _Look(lambda: self._look_at_spotler(started))
        present: set[str] = set()
        column = self.mapping.keys.contact_id
        pages = self._pages(since)
        while True:
            read_at = self.ordering.now_ms()  # before the page is read: see _fresh_rows
            rows = next(pages, None)
            if rows is None:
                break
            if full:
                present.update(str(row.get(column)) for row in rows)
            self._handle_page(rows, spotler, result, read_at)
            self.sink.flush(result)
            if progress:
                progress(result)
        if full:
            self._handle_gone(present, result)
            self.sink.flush(result)
        # Signpost: never past the poll's start, so edits made during the poll are seen next time.
        self.sink.cursor("afas", started)
        result.cursor_to = started.isoformat()
        if self.housekeeping:
            self._retention(result)
        result.duration_s = time.perf_counter() - t0
        log.info(
            "afas poll %s: read=%d changed=%d unchanged=%d rejected=%d pending=%d messages=%d in %.2fs",
            result.run_id, result.read, result.changed, result.unchanged, result.rejected,
            result.already_pending, result.enqueued_messages, result.duration_s,
        )
        return result

    def _retention(self, result: PollResult) -> None:
        """Forget departed contacts gone long enough, then drop records past their retention."""
        now = self.clock().timestamp()
        forgotten = forget_departed(self.client, self.getconnector, self.mapping, self.departed,
                                    after_s=self.forget_after_s, now=now)
        result.retention_forgotten = len(forgotten)
        if forgotten:
            log.info("forgot %d contact(s) gone from AFAS for %.0f days: %s", len(forgotten),
                     self.forget_after_s / 86400, ", ".join(forgotten))
        sweep(self.redis, retention_s=self.retention_s, now=now, consent_retention_s=self.consent_retention_s)

    def _handle_gone(self, present: set[str], result: PollResult) -> None:
        """Note the contacts gone from the GetConnector as departed; apply the mapping's ``deletions`` policy."""
        gone, synced = gone_contacts(self.client, self.getconnector, self.mapping, self.agreed, present)
        result.gone = len(gone)
        if self.housekeeping:
            self.departed.back([cid for cid in self.departed.all() if cid in present])
            if len(gone) / max(1, synced) <= self.deletions_max_share or self.allow_deletions:
                self.departed.note(gone, self.clock().timestamp())
        if not gone or self.mapping.deletions == "ignore":
            return
        try:
            changes = unsubscribes(gone, synced, self.mapping, self.agreed, stamp=int(self.clock().timestamp() * 1000),
                                   max_share=self.deletions_max_share, allow=self.allow_deletions)
        except DeletionsHeld:
            result.deletions_held = True
            raise
        for change in changes:
            self.sink.spotler(change)
        result.changed += len(changes)

    def _look_at_spotler(self, now: datetime) -> dict[str, SpotlerSeen]:
        """Spotler edits the Spotler producer has not handled yet, so a change made on both sides
        is settled by the merge rules whichever producer polls first (in memory, this poll only)."""
        if self.spotler is None:
            return {}
        since = CursorStore(self.redis, "spotler").get() or now
        self.looked_at = self.ordering.now_ms()
        seen: dict[str, SpotlerSeen] = {}
        # The largest page: during a first sync the window holds the link's own writes by the
        # ten thousand, and every request spends the shared Spotler rate the workers write with.
        for item in self.spotler.iter_updates(since - self.spotler_overlap, now, page_size=MAX_PAGE_SIZE):
            if not isinstance(item, Contact):
                continue  # the Spotler producer records it as a rejection
            stamp = item.lastChanged or 0
            known = seen.get(item.externalId)
            if known is None or stamp >= known.stamp:
                seen[item.externalId] = SpotlerSeen(spotler_values(item, self.mapping), stamp)
        self.spotler_seen = len(seen)
        return seen

    def _handle_page(
        self, rows: list[dict[str, Any]], spotler: _Look, result: PollResult, read_at: int
    ) -> None:
        result.read += len(rows)
        records: list[ContactRecord] = []
        rejections: list[Rejection] = []
        for row in rows:
            decoded = self._decode(row)
            (records if isinstance(decoded, ContactRecord) else rejections).append(decoded)  # type: ignore[arg-type]
        forgotten = self.tombstones.which([r.contact_id for r in records]
                                          + [r.contact_id for r in rejections if r.contact_id is not None])
        if forgotten:
            result.forgotten += len(forgotten)
            records = [r for r in records if r.contact_id not in forgotten]
            rejections = [r for r in rejections if r.contact_id not in forgotten]
        # A contact a worker is writing into AFAS right now may show that write already while the
        # agreed state does not yet: taken for an AFAS edit, our own write would come back as one.
        # Its row changes with the write, so the next poll (its lookback) reads it again.
        busy = self.ordering.writing_into("afas", [r.contact_id for r in records])
        if busy:
            result.in_flight += len(busy)
            records = [r for r in records if r.contact_id not in busy]
        states = self.agreed.states([r.contact_id for r in records])
        records, states = self._fresh_rows(records, states, read_at, rejections)
        keys = self.mapping.keys
        self.sink.resolve(
            "afas", [r.contact_id for r in records],
            [keys.contact_id, keys.person_id, keys.organisation_id, keys.email, *self._checked_columns()],
        )
        now = time.time()
        for record, state in zip(records, states, strict=True):
            try:
                # A dry run reports Spotler's side of every row, changed in AFAS or not.
                needed = self.sink.explains or _needs_look(record, state, now)
                seen = spotler.get(record.contact_id) if needed else None
                self._handle_record(record, state, seen, now, result)
            except redis.RedisError:
                raise
            except Exception as exc:
                rejections.append(self._unexpected(record.contact_id, exc))
        if rejections:
            self.sink.reject(rejections)
            result.rejected += len(rejections)
            for r in rejections:
                result.rejected_by_reason[r.reason] = result.rejected_by_reason.get(r.reason, 0) + 1
                log.warning("afas row rejected: contact=%s field=%s reason=%s", r.contact_id, r.field, r.reason)

    def _fresh_rows(
        self, records: list[ContactRecord], states: list[ContactState | None], read_at: int,
        rejections: list[Rejection],
    ) -> tuple[list[ContactRecord], list[ContactState | None]]:
        """Rows read again for contacts that got a write into AFAS while (or after) their page was read.

        Such a row may still show the value our write replaced, and against the agreed state
        read after that write it would look like a fresh AFAS edit and undo it. Read after the
        state, the row shows the write (AFAS has it before the state records it).
        """
        stale = {r.contact_id for r, st in zip(records, states, strict=True)
                 if st is not None and st.written_since("afas", read_at - CLOCK_MARGIN_MS)}
        if not stale:
            return records, states
        fresh = self.client.rows_by_ids(self.getconnector, key=self.mapping.keys.contact_id, ids=sorted(stale))
        kept: list[tuple[ContactRecord, ContactState | None]] = []
        for record, state in zip(records, states, strict=True):
            if record.contact_id not in stale:
                kept.append((record, state))
                continue
            row = fresh.get(record.contact_id)
            if row is None:
                continue  # gone from the GetConnector meanwhile: the next pass sees what became of it
            decoded = self._decode(row)
            if isinstance(decoded, ContactRecord):
                kept.append((decoded, state))
            else:
                rejections.append(decoded)
        return [r for r, _ in kept], [s for _, s in kept]

    def _checked_columns(self) -> list[str]:
        keys = self.mapping.keys
        return [*([keys.blocked] if keys.blocked else []), *keys.modified,
                *(f.column for f in self.mapping.fields if f.type == "yesno"), "-"]

    def _decode(self, row: dict[str, Any]) -> ContactRecord | Rejection:
        try:
            return decode_row(row, self.mapping)
        except Exception as exc:
            return self._unexpected(str(row.get(self.mapping.keys.contact_id)), exc)

    def _unexpected(self, contact_id: str, exc: Exception) -> Rejection:
        log.error("afas contact %s could not be read:\n%s", contact_id, redact_exception(exc))
        return Rejection(contact_id=contact_id, field="-", reason=f"unexpected error: {type(exc).__name__}")

    def _write_back_conflicts(
        self, record: ContactRecord, state: ContactState | None, decision: Decision, stamp: int, now: float
    ) -> None:
        """A conflict Spotler won goes back to AFAS from here too: the Spotler edit may no longer be on
        its way (a write that found AFAS changed since left it to this poll)."""
        back = {c.field: decision.to_afas[c.field] for c in decision.conflicts
                if c.winner == "spotler" and c.field in decision.to_afas}
        if not back:
            return
        stamps = dict.fromkeys(back, stamp)
        if state is not None and already_pending(state, "afas", back, stamps, now):
            return
        self.sink.journal(record.contact_id, Seen(source="afas", stamp=record.stamp, fields=sorted(back),
                                                  decision="to_afas"))
        self.sink.afas(AfasChange(
            contact_id=record.contact_id, person_id=record.person_id, organisation_id=record.organisation_id,
            changes=back, last_changed=stamp, stamps=stamps,
            bases={n: state.stamp(n) if state is not None else 0 for n in back},
            seen={n: record.values.get(n) for n in back},
        ))

    def _handle_record(
        self, record: ContactRecord, state: ContactState | None, seen: SpotlerSeen | None, now: float,
        result: PollResult,
    ) -> None:
        before = state.values if state is not None and state.synced else None
        if seen is not None and state is not None and state.written_since("spotler", self.looked_at - CLOCK_MARGIN_MS):
            seen = None  # read before our latest write into Spotler landed: it may show what it replaced
        spotler_touched = touched(state, seen.stamp if seen is not None else None)
        afas_ms = _afas_edit_time(record, state, before)
        view, view_stamp = spotler_view(before, state, seen, now, spotler_touched > afas_ms)
        real, real_view = record, view
        record, view = self._unbeaten(record, view, before, state, now)
        if view is None and before is not None and not record.blocked and not self.sink.explains:
            delta = diff(record.values, before)  # the common case: Spotler has not moved
            stamps = dict.fromkeys(delta, record.stamp)
        else:
            decision = decide_row(record, self.mapping, before, view, view_stamp, spotler_touched, afas_ms)
            self.sink.explain(record, before, view if view is not None else before, decision)
            if decision.conflicts:
                self.sink.conflicts(decision.conflicts)
            delta = decision.to_spotler
            both = max(record.stamp, view_stamp)
            moved = {n for n, v in (view or {}).items() if (before or {}).get(n) != v}
            stamps = {n: both if n in moved else record.stamp for n in delta}
            # Values both systems already hold but the agreed state does not: recorded, nothing written.
            settled = [FieldWrite(n, v, both, state.stamp(n) if state else 0)
                       for n, v in decision.agreed.items()
                       if n not in delta and n not in decision.to_afas
                       and (v != before.get(n) if before is not None else v is not None)]
            if settled:
                self.sink.settle(ContactWrite(contact_id=record.contact_id, fields=settled))
                self.sink.journal(record.contact_id, Seen(source="afas", stamp=record.stamp,
                                                          fields=sorted(w.name for w in settled), decision="agreed"))
            self._write_back_conflicts(record, state, decision, both, now)
        if state is not None:
            # An AFAS edit still on its way to Spotler that AFAS has since undone or changed again:
            # AFAS's value now goes after it, stamped newer (AFAS's own stamps are ambiguous in the
            # hour the clocks go back, so the order comes from the pending change, not the row).
            for name, pending in state.pending("spotler", now).items():
                if name not in delta and name in real.values and pending.value != real.values[name]:
                    delta[name] = real.values[name]
                    stamps[name] = max(record.stamp, pending.stamp + 1)
        if not delta:
            result.unchanged += 1
            if is_echo(state, "afas", record.stamp):
                self.sink.journal(record.contact_id, Seen(source="afas", stamp=record.stamp, fields=[],
                                                          decision="echo"))
            return
        if state is not None and already_pending(state, "spotler", delta, stamps, now):
            result.already_pending += 1
            return
        log.debug("contact %s: %s to Spotler", record.contact_id, ", ".join(sorted(delta)))
        self.sink.journal(record.contact_id, Seen(source="afas", stamp=record.stamp, fields=sorted(delta),
                                                  decision="to_spotler"))
        self.sink.spotler(ContactChange(
            contact_id=record.contact_id, changes=delta, modified=record.modified,
            person_id=record.person_id, organisation_id=record.organisation_id,
            new=before is None, blocked=record.blocked,
            stamps=stamps, bases={n: state.stamp(n) if state else 0 for n in delta},
            seen={n: real_view.get(n) for n in delta if n in real_view} if real_view is not None else {},
        ))
        result.changed += 1

    def _unbeaten(
        self, record: ContactRecord, view: dict[str, Value] | None, before: dict[str, Value] | None,
        state: ContactState | None, now: float,
    ) -> tuple[ContactRecord, dict[str, Value] | None]:
        """Both sides' values, a conflict's loser still awaiting its winner read as agreed (``state.beaten``)."""
        if state is None or before is None or not (state.pending("afas", now) or state.pending("spotler", now)):
            return record, view
        cid = record.contact_id
        [on_afas], [on_spotler] = self.beaten.get_many("afas", [cid]), self.beaten.get_many("spotler", [cid])
        if not on_afas and not on_spotler:
            return record, view
        values = unbeaten("afas", record.values, before, state, on_afas, now)
        return (msgspec.structs.replace(record, values=values),
                unbeaten("spotler", view, before, state, on_spotler, now) if view is not None else None)


class _Look:
    """Spotler's recent feed as the AFAS producer looks at it: read once per poll, on first need."""

    def __init__(self, read: Callable[[], dict[str, SpotlerSeen]]) -> None:
        self._read = read
        self._seen: dict[str, SpotlerSeen] | None = None

    def get(self, contact_id: str) -> SpotlerSeen | None:
        if self._seen is None:
            self._seen = self._read()
        return self._seen.get(contact_id)


def _needs_look(record: ContactRecord, state: ContactState | None, now: float) -> bool:
    """A row the merge rules may need Spotler's side for: new, blocked, or changed since it was last decided.

    A row that equals what both systems agreed on, or whose every change is the one already
    on its way to Spotler, gives the AFAS producer nothing new to decide: a Spotler edit of it
    is the Spotler producer's to settle. (During a first sync the polls after the pass re-read
    rows whose changes still wait in the queue: looking for each would spend the Spotler rate
    the workers write with.)
    """
    if state is None or record.blocked or state.pending("afas", now):
        return True
    pending = state.pending("spotler", now)
    changed = diff(record.values, state.values if state.synced else None)
    return (any(n not in pending or pending[n].value != v for n, v in changed.items())
            or any(record.values.get(n) != p.value for n, p in pending.items()))


def _afas_edit_time(record: ContactRecord, state: ContactState | None, before: dict[str, Value] | None) -> int:
    """When AFAS's unsynced edits in ``record`` were made, as far as the merge rules may assume.

    AFAS stamps rows, to the second, and our own writes move that stamp. A row whose
    stamp may be our latest write's (a contact left to this poll while we wrote it, or
    read again after the write) carries AFAS edits made before that write: they are
    only known to follow what was agreed on their fields, so they count as made then,
    not at our write; a recipient's unsubscribe between the two is not undone.
    """
    if state is None or before is None or not state.written_since("afas", record.stamp - CLOCK_MARGIN_MS):
        return record.stamp
    edited = [n for n, v in record.values.items() if before.get(n) != v]
    return min(record.stamp, max((state.stamp(n) for n in edited), default=record.stamp))
