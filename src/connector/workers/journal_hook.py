"""What the workers tell each contact's journal (``connector.state.journal``): writes, failures, letters.

Called after the write it describes (its outcome known), like the event and
consent hooks; the journal never raises into the sync. A forgotten contact
gets no step: ``connector forget`` erased its journal and nothing recreates it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis

from connector.state.journal import Journal, Step, Wrote, text
from connector.workers.dead_letters import payload_contacts

if TYPE_CHECKING:  # the retry policy imports this module; the writers import the policy's errors
    from connector.schemas.events import AfasChange, SpotlerBatch
    from connector.writers.afas import AfasOutcome
    from connector.writers.spotler import BatchOutcome

__all__ = ["failed", "to_afas", "to_spotler"]

SPOTLER_ENTITY = "contact/list"


def _append(client: redis.Redis, steps: Iterable[tuple[str, Step]]) -> None:
    journal = Journal.for_process(client)
    if journal is not None:
        journal.append(steps)


def to_spotler(client: redis.Redis, batch: SpotlerBatch, outcome: BatchOutcome) -> None:
    """Each change of a ``POST contact/list`` batch: ok, superseded, refused or to be retried."""
    if Journal.for_process(client) is None:
        return
    attempt = batch.attempt + 1
    steps: list[tuple[str, Step]] = []

    def wrote(changes: Iterable[Any], result: str, detail: str = "") -> None:
        for change in changes:
            steps.append((change.contact_id, Wrote(
                target="spotler", entity=SPOTLER_ENTITY, fields=sorted(change.changes), outcome=result,  # type: ignore[arg-type]
                attempt=attempt, detail=detail or ("re-assert" if change.reassert else ""))))

    wrote(outcome.written, "ok")
    wrote(outcome.superseded, "superseded")
    wrote(outcome.retry, "retry")
    for change, code, message in outcome.rejected:
        wrote([change], "refused", text(f"{code} {message}".strip()))
    _append(client, steps)


def to_afas(client: redis.Redis, change: AfasChange, outcome: AfasOutcome) -> None:
    """One change written back: the connectors AFAS took, and the fields something newer held back."""
    if outcome.forgotten or Journal.for_process(client) is None:
        return
    left_out = set(outcome.superseded)
    fields = sorted(n for n in change.changes if n not in left_out) + (["bounce"] if change.bounce else [])
    detail = "re-assert" if change.reassert else ""
    steps: list[tuple[str, Step]] = []
    if outcome.written:
        steps.append((change.contact_id, Wrote(target="afas", entity=",".join(outcome.written), fields=fields,
                                               outcome="ok", detail=detail)))
    if left_out:
        steps.append((change.contact_id, Wrote(target="afas", entity="-", fields=sorted(left_out),
                                               outcome="superseded", detail=detail)))
    _append(client, steps)


def failed(client: redis.Redis, queue: str, payload: Any, attempt: int, error: BaseException) -> None:
    """An attempt that raised and will be retried: one step per contact of the message."""
    contacts = payload_contacts(payload)
    if not contacts or Journal.for_process(client) is None:
        return
    into_afas = queue.startswith("afas")
    step = Wrote(target="afas" if into_afas else "spotler", entity="-" if into_afas else SPOTLER_ENTITY, fields=[],
                 outcome="failed", attempt=attempt, detail=type(error).__name__)
    _append(client, [(cid, step) for cid in contacts])
