"""Read Spotler's change and bounce feeds and publish what must go back to AFAS.

A window ``[cursor - overlap, now - safety lag]`` of ``contact/updates/list``
and ``contact/bounces/list`` is read each poll (the client's reader cannot
skip an item while the feed changes under it), one item at a time: a
malformed item becomes a rejection and the rest goes on. A contact whose
mapped values equal the agreed state (and that has nothing on its way to
AFAS) is an echo of our own write and produces nothing. For the rest, the
current AFAS rows are read (about 40 contacts per GetConnector call) so that
a change made on both sides is settled by the merge rules, not by who polled
first. A contact AFAS does not list is never created there: it becomes a
rejection. A contact AFAS lists but the link has no agreed state for (an
account that existed before the link, or a Redis that lost its data) is
settled field by field as a conflict, so an unsubscribe in Spotler is kept.

Each change to AFAS carries Spotler's ``lastChanged`` as its stamp. The same
feed item seen again (the windows overlap) is recognised as already pending
and not enqueued twice. Without a cursor (a first start, or a Redis that lost
its data) the window starts ``restart_lookback_s`` back (24 h by default),
not "now", and the log says so.

Feed items of a forgotten contact (``connector forget``, a tombstone) are
skipped: no state, no rejection, nothing enqueued.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis

from connector.clients.afas import AfasClient
from connector.clients.spotler import MAX_PAGE_SIZE, SpotlerClient
from connector.errors import ConnectorError
from connector.producers.known import CLOCK_MARGIN_MS, already_pending, is_echo, not_our_write, touched
from connector.producers.sink import Sink
from connector.redaction import redact_exception
from connector.schemas.events import AfasChange, ContactChange, Value
from connector.schemas.mapping import Mapping
from connector.schemas.runs import PollResult
from connector.schemas.spotler import Bounce, Contact, FeedProblem
from connector.state.agreed import AgreedStore, ContactState
from connector.state.beaten import BeatenValues, unbeaten
from connector.state.cursors import CursorStore
from connector.state.journal import Seen
from connector.state.keys import bounce_marker
from connector.state.ordering import ContactWrite, FieldWrite, Ordering
from connector.state.tombstones import Tombstones
from connector.sync.diff import diff
from connector.sync.from_spotler import spotler_values
from connector.sync.merge import decide
from connector.sync.rows import ContactRecord, Rejection, decode_row

__all__ = ["SpotlerProducer"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_CHUNK = 100
_BOUNCE_DEDUP_TTL_S = 2 * 86400


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
    """Poll logic; I/O goes through the injected clients, the agreed state (read) and the sink."""

    def __init__(
        self,
        spotler: SpotlerClient,
        afas: AfasClient,
        mapping: Mapping,
        redis_client: redis.Redis,
        sink: Sink,
        *,
        getconnector: str,
        overlap_s: float = 120.0,
        safety_lag_s: float = 2.0,
        restart_lookback_s: float = 86400.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.spotler = spotler
        self.afas = afas
        self.mapping = mapping
        self.redis = redis_client
        self.sink = sink
        self.getconnector = getconnector
        self.overlap = timedelta(seconds=overlap_s)
        self.safety_lag = timedelta(seconds=safety_lag_s)
        self.restart_lookback = timedelta(seconds=restart_lookback_s)
        self.clock = clock
        self.cursor = CursorStore(redis_client, "spotler")
        self.agreed = AgreedStore(redis_client)
        self.beaten = BeatenValues(redis_client)
        self.ordering = Ordering(redis_client)
        self.tombstones = Tombstones(redis_client)

    def window(self) -> tuple[datetime, datetime]:
        end = self.clock() - self.safety_lag
        since = self.cursor.get()
        if since is None:
            log.warning("no Spotler cursor (a first start, or Redis lost its data): reading Spotler's changes "
                        "of the last %.0f h", self.restart_lookback.total_seconds() / 3600)
            return end - self.restart_lookback, end
        return since - self.overlap, end

    def poll_once(self) -> PollResult:
        start, end = self.window()
        result = PollResult(
            run_id=uuid.uuid4().hex[:12], source="spotler", started_at=time.time(),
            cursor_from=start.isoformat(),
        )
        t0 = time.perf_counter()
        read_at = self.ordering.now_ms()  # before the feed is read: see _fresh_contacts
        # The largest page: during a first sync the window holds the link's own writes by the ten
        # thousand (30,000 cost 180 requests in pages of 1,000, 7 in pages of 10,000), and every
        # request spends the Spotler rate the workers write with.
        for items in _chunks(self.spotler.iter_updates(start, end, page_size=MAX_PAGE_SIZE), _CHUNK):
            result.read += len(items)
            self._handle_contacts(self._readable(items, result), result, read_at)
            self.sink.flush(result)
        for bounces in _chunks(self.spotler.iter_bounces(start, end), _CHUNK):
            result.read += len(bounces)
            for bounce in self._readable(bounces, result):
                self._guarded(bounce.contact.externalId, result, self._handle_bounce, bounce, result)
            self.sink.flush(result)
        self.sink.cursor("spotler", end)
        result.cursor_to = end.isoformat()
        result.duration_s = time.perf_counter() - t0
        log.info(
            "spotler poll %s: read=%d changed=%d unchanged=%d rejected=%d pending=%d messages=%d in %.2fs",
            result.run_id, result.read, result.changed, result.unchanged, result.rejected,
            result.already_pending, result.enqueued_messages, result.duration_s,
        )
        return result

    def _readable(self, items: list[T | FeedProblem], result: PollResult) -> list[T]:
        forgotten = self.tombstones.which([cid for cid in map(_contact_of, items) if cid])
        if forgotten:
            kept = [item for item in items if _contact_of(item) not in forgotten]
            result.forgotten += len(items) - len(kept)
            items = kept
        good: list[T] = []
        for item in items:
            if isinstance(item, FeedProblem):
                self._reject(item.external_id, item.field, f"unreadable {item.feed} feed item: {item.reason}", result)
            else:
                good.append(item)
        return good

    def _guarded(self, contact_id: str, result: PollResult, fn: Callable[..., None], *args: Any) -> None:
        """Run one contact's step; an unexpected error rejects that contact, not the poll.

        A client's or Redis's error is about a system, not the record: it fails the poll,
        which leaves the cursor where it was and is retried.
        """
        try:
            fn(*args)
        except (ConnectorError, redis.RedisError):
            raise
        except Exception as exc:
            log.error("spotler contact %s could not be handled:\n%s", contact_id,
                      redact_exception(exc))
            self._reject(contact_id, "-", f"unexpected error: {type(exc).__name__}", result)

    def _touched(self, contact_id: str, contact: Contact, state: ContactState | None) -> int:
        """Spotler's latest change not our own write; a new one is noted for the merge rules (after the flush)."""
        stamp = contact.lastChanged or 0
        if state is not None and not_our_write(state, stamp) and stamp > state.st:
            self.sink.touch(contact_id, stamp)
        return touched(state, stamp)

    def _fresh_contacts(self, newest: dict[str, Contact], states: list[ContactState | None], read_at: int) -> None:
        """Read again the contacts that got a write into Spotler while (or after) the feed was read.

        Such a feed item may still show the values our write replaced, and against the agreed
        state read after that write it would look like a Spotler edit and undo it in AFAS.
        Read after the state, the contact shows the write.
        """
        for cid, state in zip(list(newest), states, strict=True):
            if state is not None and state.written_since("spotler", read_at - CLOCK_MARGIN_MS):
                fresh = self.spotler.get(cid)
                if fresh is None:
                    del newest[cid]
                else:
                    newest[cid] = fresh

    def _afas_rows(self, contact_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not contact_ids:
            return {}
        return self.afas.rows_by_ids(self.getconnector, key=self.mapping.keys.contact_id, ids=contact_ids)

    def _handle_contacts(self, contacts: list[Contact], result: PollResult, read_at: int) -> None:
        newest: dict[str, Contact] = {}
        for contact in contacts:
            known = newest.get(contact.externalId)
            if known is None or (contact.lastChanged or 0) >= (known.lastChanged or 0):
                newest[contact.externalId] = contact
        # A contact a worker is writing into Spotler right now may show that write already while the
        # agreed state does not yet; the write moves its lastChanged, so the next poll sees it again.
        busy = self.ordering.writing_into("spotler", list(newest))
        for cid in busy:
            del newest[cid]
        result.in_flight += len(busy)
        ids = list(newest)
        states = self.agreed.states(ids)
        self._fresh_contacts(newest, states, read_at)
        now = time.time()
        moved: list[tuple[Contact, dict[str, Value], ContactState | None]] = []
        for cid, state in zip(ids, states, strict=True):
            current = newest.get(cid)
            if current is None:
                continue
            values = spotler_values(current, self.mapping)
            later = self._touched(cid, current, state)
            if state is not None and state.synced and not _moved(values, state, now, later):
                result.unchanged += 1  # our own write coming back, or nothing mapped changed
                if is_echo(state, "spotler", current.lastChanged or 0):
                    self.sink.journal(cid, Seen(source="spotler", stamp=current.lastChanged or 0, fields=[],
                                                decision="echo"))
            else:
                moved.append((current, values, state))
        result.unchanged += len(contacts) - len(ids) - len(busy)
        if not moved:
            return
        rows = self._afas_rows([c.externalId for c, _, _ in moved])
        for contact, values, state in moved:
            self._guarded(contact.externalId, result, self._decide, contact, values, state,
                          rows.get(contact.externalId), now, result)

    def _decide(
        self, contact: Contact, values: dict[str, Value], state: ContactState | None,
        row: dict[str, Any] | None, now: float, result: PollResult,
    ) -> None:
        cid = contact.externalId
        if row is None:
            reason = ("unknown to AFAS: the link never creates contacts in AFAS" if state is None or not state.synced
                      else "cannot write back: no longer in the AFAS GetConnector")
            self._reject(cid, "externalId", reason, result)
            return
        record = decode_row(row, self.mapping)
        if not isinstance(record, ContactRecord):
            self._reject(cid, "externalId", f"cannot write back: {record.reason}", result)
            return
        before = state.values if state is not None and state.synced else None
        stamp = contact.lastChanged or 0
        afas_now, spotler_now = self._unbeaten(cid, record.values, values, before, state, now)
        decision = decide(
            cid, self.mapping, agreed=before, afas=afas_now, spotler=spotler_now, blocked=record.blocked,
            afas_time=record.stamp / 1000, spotler_time=stamp / 1000,
            spotler_touched=touched(state, stamp) / 1000,
        )
        if decision.conflicts:
            self.sink.conflicts(decision.conflicts)
            for c in decision.conflicts:
                log.info("conflict on contact %s field %s settled by %s: %s wins", cid, c.field, c.rule, c.winner)
        if decision.ignored:
            log.info("contact %s: Spotler edit of one-way field(s) %s not written back",
                     cid, ", ".join(decision.ignored))
        both = max(stamp, record.stamp)
        conflicted = {c.field for c in decision.conflicts}
        to_afas = dict(decision.to_afas)
        stamps = {n: both if n in conflicted else stamp for n in to_afas}
        if state is not None:
            # A Spotler edit still on its way to AFAS that Spotler has since undone or changed again:
            # Spotler's value now goes after it, stamped newer.
            for name, pending in state.pending("afas", now).items():
                current = values.get(name)
                if name not in to_afas and name in values and pending.value != current:
                    to_afas[name] = current
                    stamps[name] = max(stamp, pending.stamp + 1)
        bases = {n: state.stamp(n) if state is not None else 0 for n in (*to_afas, *decision.to_spotler)}
        settled = [FieldWrite(n, v, both, bases.get(n, state.stamp(n) if state is not None else 0))
                   for n, v in decision.agreed.items()
                   if n not in to_afas and n not in decision.to_spotler
                   and (v != before.get(n) if before is not None else v is not None)]
        if settled:
            self.sink.settle(ContactWrite(contact_id=cid, fields=settled, person=record.person_id,
                                          organisation=record.organisation_id))
            self.sink.journal(cid, Seen(source="spotler", stamp=stamp, fields=sorted(w.name for w in settled),
                                        decision="agreed"))
        if not to_afas and not decision.to_spotler:
            result.unchanged += 1
            return
        sent = False
        if to_afas and not (state is not None and already_pending(state, "afas", to_afas, stamps, now)):
            sent = True
            self.sink.journal(cid, Seen(source="spotler", stamp=stamp, fields=sorted(to_afas), decision="to_afas"))
            self.sink.afas(AfasChange(
                contact_id=cid, person_id=record.person_id, organisation_id=record.organisation_id,
                changes=to_afas, last_changed=stamp, run_id=result.run_id,
                stamps=stamps, bases={n: bases[n] for n in to_afas},
                seen={n: record.values.get(n) for n in to_afas},
            ))
        if decision.to_spotler:
            back = {n: both for n in decision.to_spotler}
            if not (state is not None and already_pending(state, "spotler", decision.to_spotler, back, now)):
                sent = True
                self.sink.journal(cid, Seen(source="spotler", stamp=stamp, fields=sorted(decision.to_spotler),
                                            decision="to_spotler"))
                self.sink.spotler(ContactChange(
                    contact_id=cid, changes=decision.to_spotler, modified=record.modified,
                    person_id=record.person_id, organisation_id=record.organisation_id, blocked=record.blocked,
                    stamps=back, bases={n: bases[n] for n in decision.to_spotler},
                    seen={n: values.get(n) for n in decision.to_spotler},
                ))
        if sent:
            result.changed += 1
        else:
            result.already_pending += 1

    def _unbeaten(
        self, cid: str, afas: dict[str, Value], spotler: dict[str, Value], before: dict[str, Value] | None,
        state: ContactState | None, now: float,
    ) -> tuple[dict[str, Value], dict[str, Value]]:
        """Both sides' values, a conflict's loser still awaiting its winner read as agreed (``state.beaten``)."""
        if state is None or before is None or not (state.pending("afas", now) or state.pending("spotler", now)):
            return afas, spotler
        [on_afas], [on_spotler] = self.beaten.get_many("afas", [cid]), self.beaten.get_many("spotler", [cid])
        return (unbeaten("afas", afas, before, state, on_afas, now),
                unbeaten("spotler", spotler, before, state, on_spotler, now))

    def _handle_bounce(self, bounce: Bounce, result: PollResult) -> None:
        if not bounce.hard:
            result.unchanged += 1  # soft bounces are Spotler's business
            return
        cid, date = bounce.contact.externalId, bounce.date
        if self.redis.exists(bounce_marker(cid, date)):
            result.unchanged += 1
            return
        state = self.agreed.state(cid)
        person, organisation = (state.p, state.o) if state is not None else (None, None)
        if not person or not organisation:
            rows = self._afas_rows([cid])
            record = decode_row(rows[cid], self.mapping) if cid in rows else None
            if not isinstance(record, ContactRecord):
                reason = ("hard bounce of a contact unknown to AFAS" if state is None
                          else "hard bounce of a contact no longer in AFAS")
                self._reject(cid, "bounce", reason, result)
                return
            person, organisation = record.person_id, record.organisation_id
        self.sink.afas(AfasChange(
            contact_id=cid, person_id=person, organisation_id=organisation, changes={},
            last_changed=date, bounce="HARDBOUNCE", run_id=result.run_id,
        ))
        self.sink.mark(bounce_marker(cid, date), _BOUNCE_DEDUP_TTL_S)
        self.sink.journal(cid, Seen(source="spotler", stamp=date, fields=["bounce"], decision="bounce"))
        result.changed += 1

    def _reject(self, contact_id: str | None, field: str, reason: str, result: PollResult) -> None:
        self.sink.reject([Rejection(contact_id=contact_id, field=field, reason=reason, source="spotler")])
        result.rejected += 1
        result.rejected_by_reason[reason] = result.rejected_by_reason.get(reason, 0) + 1
        log.warning("spotler contact %s rejected: %s", contact_id, reason)


def _contact_of(item: object) -> str | None:
    """The externalId a feed item names (a contact, a bounce, an unreadable item)."""
    if isinstance(item, Contact):
        return item.externalId
    if isinstance(item, Bounce):
        return item.contact.externalId
    if isinstance(item, FeedProblem):
        return item.external_id
    return None


def _moved(values: dict[str, Value], state: ContactState, now: float, touched: int) -> bool:
    """Spotler differs from the agreed state, or from an edit of its own still on its way to AFAS,
    or an AFAS opt-in on its way to Spotler is older than a later change there that left the bit off."""
    if diff(values, state.values):
        return True
    if any(p.value != values.get(n) for n, p in state.pending("afas", now).items()):
        return True
    return any(p.value is True and values.get(n) is False and p.stamp < touched
               for n, p in state.pending("spotler", now).items() if n.startswith("permissions."))
