"""Erase what the link holds about a person, keeping only a tombstone (``connector forget``).

For each key family of ``connector.state.keys`` (and the stores that keep
their own), what ``erase`` does with a forgotten contact:

- the contact's agreed state (agreed values, pending changes, person and
  organisation numbers: its entries in ``connector:states:<bucket>`` and
  ``connector:pending:<bucket>``, or ``connector:agreed:<id>`` in the form
  from before the packed layout): **deleted**. ``connector:fields`` (field
  names only) is kept.
- ``connector:rejections`` / ``:rejections:t`` / ``:rejections:ids:<source>``:
  the contact's records and index entries **deleted**.
- ``connector:conflicts`` / ``:conflicts:t`` (both values of a conflict):
  the contact's records **deleted**.
- ``connector:dlq:*`` (dead letters; a letter's payload names its contacts):
  the contact **taken out** of every letter, a letter left empty deleted.
  Dramatiq's own dead-letter queue is adopted into that store first (the CLI).
- ``connector:feed:bounce:<id>:<date>`` (hard-bounce markers): **deleted**.
- ``connector:consent:c:<id>``, ``:consent:t``, ``:consent:first``,
  ``:consent:blocked`` (the consent trail, ``connector.state.consent``): the
  contact's trail and entries **deleted**.
- ``connector:departed`` (when a full pass missed it): its entry **deleted**.
- ``connector:journal:<id>`` (the per-contact journal, ``connector.state.journal``):
  **deleted**; steps arriving after the tombstone are not journalled.
- ``connector:forgotten``: the **tombstone** (id and time) is added first, so
  nothing that runs meanwhile can write the contact's state again
  (``connector.state.tombstones``).
- ``connector:lease:<id>``: left alone; a random token under the id that
  expires within seconds (a writer holds it for one call).
- ``connector:cursor:*``, ``:runs:*``, ``:last_poll:*``, ``:run:<id>:outcome``,
  ``:counters``, ``:limits:*``, ``:lock:*``: hold no contact (counts, times,
  tokens): nothing to do.
- Dramatiq's queues (``dramatiq:<queue>.msgs``, delayed ``.DQ``): a change
  already queued keeps the person's data until a worker takes it, at most the
  queue's six-hour max age (or a seven-day broker delay); the worker then
  drops it as *forgotten* (the tombstone), and an expired one is not
  dead-lettered. The queues are not edited under the workers' feet.

A write in flight at the moment of forgetting may still land in its target
system; its commit finds the tombstone and records nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec
import redis

from connector.state import keys
from connector.state.agreed import AgreedStore
from connector.state.beaten import BeatenValues
from connector.state.conflicts import ConflictStore
from connector.state.consent import ConsentTrail
from connector.state.departed import Departed
from connector.state.doubt import WritesInDoubt
from connector.state.journal import Journal
from connector.state.rejections import RejectionStore
from connector.state.tombstones import Tombstones
from connector.workers.dead_letters import DeadLetterStore

__all__ = ["ForgetReport", "erase"]


class ForgetReport(msgspec.Struct, kw_only=True):
    """What ``erase`` removed, per kind (ids and counts only)."""

    contacts: list[str]
    agreed_state: int = 0
    rejections: int = 0
    conflicts: int = 0
    dead_letters: int = 0
    bounce_markers: int = 0
    departed: int = 0
    consent_records: int = 0
    journal: int = 0
    forgotten_at: float = 0.0


def erase(
    client: redis.Redis, contact_ids: Sequence[str], *, dead_letters: DeadLetterStore | None = None,
    now: float | None = None,
) -> ForgetReport:
    """Tombstone the contacts, then delete every record that names them."""
    ids = list(dict.fromkeys(contact_ids))
    now = time.time() if now is None else now
    report = ForgetReport(contacts=ids, forgotten_at=now)
    if not ids:
        return report
    Tombstones(client).add(ids, now)
    report.agreed_state = AgreedStore(client).erase(ids)
    WritesInDoubt.erase(client, ids)
    BeatenValues.erase(client, ids)
    report.rejections = RejectionStore(client).forget(ids)
    report.conflicts = ConflictStore(client).forget(ids)
    report.consent_records = ConsentTrail(client).erase(ids)
    report.dead_letters = (dead_letters or DeadLetterStore(client)).forget(ids)
    for cid in ids:
        markers = list(client.scan_iter(match=keys.bounce_markers(_glob(cid)), count=1000))
        if markers:
            report.bounce_markers += int(client.delete(*markers))
    departed = Departed(client)
    report.departed = sum(departed.since(cid) is not None for cid in ids)
    departed.back(ids)
    report.journal = Journal(client).erase(ids)
    return report


def _glob(text: str) -> str:
    """``text`` as a literal in a SCAN pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
