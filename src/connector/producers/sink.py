"""Where a poll's decisions go: the one write path of both producers.

A producer never writes Redis or a queue itself. It hands the sink what it
decided (changes for either system, values both systems already agree on,
rejections, conflicts, dedup markers, the new cursor) and calls ``flush`` at
the end of each page or chunk. ``RedisSink.flush`` first enqueues every staged
message, then records them (the changes as pending in the agreed state, the
settled values, the markers), and the cursor is written only by ``cursor``
after the last flush. So **a marker is never written before what it stands
for is enqueued**, by construction: a poll that fails part-way (a page fetch,
an enqueue, Redis) leaves behind nothing that hides a change from the next
poll, at worst changes enqueued twice, which the workers' ordering check
refuses to write twice.

``DryRunSink`` (``connector.producers.dry_run``) takes the same calls and
records them, so ``resync --dry-run`` reports what the real pass would do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Protocol

import redis

from connector.schemas.events import AfasChange, ContactChange, SpotlerBatch, Value, field_writes
from connector.schemas.runs import PollResult
from connector.state.beaten import BeatenValues
from connector.state.conflicts import ConflictStore
from connector.state.cursors import CursorStore
from connector.state.journal import Journal, Settled, Step
from connector.state.ordering import ContactWrite, Ordering
from connector.state.rejections import RejectionStore
from connector.sync.merge import Conflict, Decision
from connector.sync.rows import ContactRecord, Rejection

__all__ = ["BATCH_SIZE", "RedisSink", "Sink"]

BATCH_SIZE = 100  # Spotler's limit for POST contact/list


class Sink(Protocol):
    """What a producer may do besides reading."""

    explains: bool  # wants every decision's inputs (``explain``), not only its outcome

    def spotler(self, change: ContactChange) -> None: ...
    def afas(self, change: AfasChange) -> None: ...
    def settle(self, write: ContactWrite) -> None: ...
    def touch(self, contact_id: str, stamp: int) -> None: ...
    def reject(self, rejections: Iterable[Rejection]) -> None: ...
    def resolve(self, source: str, contact_ids: Iterable[str], fields: Iterable[str]) -> None: ...
    def conflicts(self, conflicts: Iterable[Conflict]) -> None: ...
    def mark(self, key: str, ttl_s: int) -> None: ...
    def journal(self, contact_id: str, step: Step) -> None: ...
    def flush(self, result: PollResult) -> None: ...
    def cursor(self, source: str, value: datetime) -> None: ...

    def explain(
        self, record: ContactRecord, before: Mapping[str, Value] | None,
        spotler: Mapping[str, Value] | None, decision: Decision,
    ) -> None:
        """A decision's inputs, for sinks that report (the dry run); the real one ignores it."""


class RedisSink:
    """Enqueues through the given functions, then records in Redis what it enqueued."""

    explains = False

    def __init__(
        self,
        client: redis.Redis,
        enqueue_spotler: Callable[[SpotlerBatch], object],
        enqueue_afas: Callable[[AfasChange], object] | None = None,
    ) -> None:
        self.client = client
        self.enqueue_spotler = enqueue_spotler
        self.enqueue_afas = enqueue_afas
        self.ordering = Ordering(client)
        self.rejections = RejectionStore(client)
        self.conflict_store = ConflictStore(client)
        self._spotler: list[ContactChange] = []
        self._afas: list[AfasChange] = []
        self._settles: list[ContactWrite] = []
        self._touches: list[tuple[str, int]] = []
        self._marks: list[tuple[str, int]] = []
        self._beaten: list[Conflict] = []
        self._journal = Journal.for_process(client)
        self._steps: list[tuple[str, Step]] = []

    def spotler(self, change: ContactChange) -> None:
        self._spotler.append(change)

    def afas(self, change: AfasChange) -> None:
        if self.enqueue_afas is None:
            raise RuntimeError("this sink sends nothing to AFAS")
        self._afas.append(change)

    def settle(self, write: ContactWrite) -> None:
        self._settles.append(write)

    def touch(self, contact_id: str, stamp: int) -> None:
        self._touches.append((contact_id, stamp))

    def reject(self, rejections: Iterable[Rejection]) -> None:
        self.rejections.add_many(rejections)

    def resolve(self, source: str, contact_ids: Iterable[str], fields: Iterable[str]) -> None:
        self.rejections.resolve(source, contact_ids, fields)

    def conflicts(self, conflicts: Iterable[Conflict]) -> None:
        conflicts = list(conflicts)
        self.conflict_store.add_many(conflicts)
        self._beaten += conflicts  # noted with the winners' pending changes, after their enqueue
        for c in conflicts:
            self.journal(c.contact_id, Settled(field=c.field, rule=c.rule, winner="afas" if c.winner == "afas"
                                               else "spotler"))

    def mark(self, key: str, ttl_s: int) -> None:
        self._marks.append((key, ttl_s))

    def journal(self, contact_id: str, step: Step) -> None:
        """A step for the contact's journal, written when this page is flushed."""
        if self._journal is not None:
            self._steps.append((contact_id, step))

    def explain(
        self, record: ContactRecord, before: Mapping[str, Value] | None,
        spotler: Mapping[str, Value] | None, decision: Decision,
    ) -> None:
        return None

    def flush(self, result: PollResult) -> None:
        """Enqueue what is staged, then record it; nothing but the journal's steps is recorded if an enqueue fails."""
        spotler, afas, settles, marks = self._spotler, self._afas, self._settles, self._marks
        touches, beaten, steps = self._touches, self._beaten, self._steps
        self._spotler, self._afas, self._settles, self._marks, self._touches = [], [], [], [], []
        self._beaten, self._steps = [], []
        if self._journal is not None and steps:
            # Before the enqueue: a worker may write a change before this flush ends, and its step must
            # follow the decision. A failed enqueue fails the poll; the next one decides the same change
            # again, the same step, which the journal does not add twice.
            self._journal.append(steps)
        for start in range(0, len(spotler), BATCH_SIZE):
            self.enqueue_spotler(SpotlerBatch(changes=spotler[start:start + BATCH_SIZE], run_id=result.run_id))
            result.enqueued_messages += 1
        for change in afas:
            assert self.enqueue_afas is not None
            self.enqueue_afas(change)
            result.enqueued_messages += 1
        self.ordering.stage("spotler", [_write(c) for c in spotler])
        self.ordering.stage("afas", [_write(c) for c in afas])
        BeatenValues(self.client).note(beaten)
        if settles:
            self.ordering.settle(settles)
        self.ordering.touch(touches)
        if marks:
            pipe = self.client.pipeline(transaction=False)
            for key, ttl_s in marks:
                pipe.set(key, 1, ex=ttl_s)
            pipe.execute()

    def cursor(self, source: str, value: datetime) -> None:
        CursorStore(self.client, source).set(value)


def _write(change: ContactChange | AfasChange) -> ContactWrite:
    return ContactWrite(contact_id=change.contact_id, fields=field_writes(change))
