"""``connector resync --dry-run``: the real full pass with a sink that records instead of sending.

The AFAS producer walks the whole GetConnector exactly as ``connector resync``
does (the same decoding, the same merge and ordering inputs, the same look at
Spotler's recent feed and at the changes still pending in the agreed state),
but hands its decisions to a ``DryRunSink``: nothing is enqueued, no cursor,
agreed value, pending change, rejection or conflict is written, and only GET
requests reach either API. So what the report shows is what a real pass would
do. "Spotler now" is what the link knows Spotler holds: the agreed state, or
Spotler's own value where its recent feed or a pending edit says it differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import redis

from connector.clients.afas import AfasClient
from connector.clients.spotler import SpotlerClient
from connector.producers.afas import AfasProducer
from connector.schemas.events import AfasChange, ContactChange, Value
from connector.schemas.mapping import Mapping as FieldMapping
from connector.schemas.runs import PollResult
from connector.state.journal import Step
from connector.state.ordering import ContactWrite
from connector.sync.dry_run import DryRunReport, DryRunTally, present
from connector.sync.merge import Conflict, Decision
from connector.sync.rows import ContactRecord, Rejection

__all__ = ["DryRunSink", "dry_run"]


class DryRunSink:
    """Records what a pass decided; writes nothing anywhere."""

    explains = True

    def __init__(self, mapping: FieldMapping, sample: int) -> None:
        self.mapping = mapping
        self.tally = DryRunTally(mapping, sample)

    @property
    def report(self) -> DryRunReport:
        return self.tally.report

    def explain(
        self, record: ContactRecord, before: Mapping[str, Value] | None,
        spotler: Mapping[str, Value] | None, decision: Decision,
    ) -> None:
        self.tally.planned(present(record, spotler, decision, self.mapping))

    def reject(self, rejections: Iterable[Rejection]) -> None:
        for rejection in rejections:
            self.tally.rejected(rejection)

    def spotler(self, change: ContactChange) -> None:
        return None

    def afas(self, change: AfasChange) -> None:
        return None

    def settle(self, write: ContactWrite) -> None:
        return None

    def touch(self, contact_id: str, stamp: int) -> None:
        return None

    def resolve(self, source: str, contact_ids: Iterable[str], fields: Iterable[str]) -> None:
        return None

    def conflicts(self, conflicts: Iterable[Conflict]) -> None:
        return None

    def mark(self, key: str, ttl_s: int) -> None:
        return None

    def journal(self, contact_id: str, step: Step) -> None:
        return None  # a dry run changes nothing, the journal included

    def flush(self, result: PollResult) -> None:
        return None

    def cursor(self, source: str, value: datetime) -> None:
        return None


def dry_run(
    afas: AfasClient,
    spotler: SpotlerClient,
    mapping: FieldMapping,
    redis_client: redis.Redis,
    *,
    getconnector: str,
    sample: int = 20,
    progress: Callable[[DryRunReport], None] | None = None,
) -> DryRunReport:
    """What a full resync would create, update or unsubscribe, and what would go back to AFAS."""
    sink = DryRunSink(mapping, sample)
    producer = AfasProducer(afas, mapping, redis_client, sink, getconnector=getconnector, spotler=spotler,
                            allow_deletions=True, housekeeping=False)
    result = producer.poll_once(full=True, progress=(lambda _: progress(sink.report)) if progress else None)
    report = sink.report
    report.spotler_contacts = producer.spotler_seen
    report.gone_from_afas = result.gone
    report.duration_s = result.duration_s
    return report
