"""``connector resync --dry-run``: read both systems and the agreed state, write nothing.

AFAS: the whole GetConnector, page by page. Spotler: every contact in its
change feed over a long window (``contact/updates/list`` from 2000-01-01 to
now), so that edits made in Spotler since the last sync are compared too.
Redis: the agreed state, read with ``MGET`` only. Nothing is enqueued, no
cursor, agreed value, pending marker, rejection or run record is written, and
only GET requests reach either API.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis

from connector.clients.afas import AfasClient, page_size_for
from connector.clients.spotler import SpotlerClient
from connector.schemas.mapping import Mapping
from connector.state.agreed import AgreedStore
from connector.sync.dry_run import DryRunReport, DryRunTally, SpotlerNow, plan_contact
from connector.sync.from_spotler import spotler_values
from connector.sync.rows import ContactRecord, decode_row

__all__ = ["FEED_SINCE", "dry_run", "spotler_now"]

FEED_SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def spotler_now(
    client: SpotlerClient, mapping: Mapping, *, since: datetime = FEED_SINCE, until: datetime | None = None
) -> dict[str, SpotlerNow]:
    """Every contact in Spotler's change feed since ``since``, its newest version each."""
    # The feed takes whole seconds: a minute ahead keeps an edit made this very second (and a
    # Spotler clock slightly ahead of ours) inside the window.
    until = until or datetime.now(UTC) + timedelta(minutes=1)
    contacts: dict[str, SpotlerNow] = {}
    for contact in client.iter_updates(since, until):
        stamp = contact.lastChanged or 0
        known = contacts.get(contact.externalId)
        if known is None or stamp >= known.last_changed:
            contacts[contact.externalId] = SpotlerNow(spotler_values(contact, mapping), stamp)
    return contacts


def dry_run(
    afas: AfasClient,
    spotler: SpotlerClient,
    mapping: Mapping,
    redis_client: redis.Redis,
    *,
    getconnector: str,
    sample: int = 20,
    progress: Callable[[DryRunReport], None] | None = None,
) -> DryRunReport:
    """What a full resync would create, update or unsubscribe, and what would go back to AFAS."""
    t0 = time.perf_counter()
    agreed_store = AgreedStore(redis_client)
    in_spotler = spotler_now(spotler, mapping)
    tally = DryRunTally(mapping, sample)
    tally.report.spotler_contacts = len(in_spotler)
    in_afas: set[str] = set()
    keys = mapping.keys
    pages = afas.iter_pages(
        getconnector, order_by=[keys.contact_id], page_size=page_size_for(len(mapping.columns))
    )
    for rows in pages:
        decoded = [decode_row(row, mapping) for row in rows]
        records = [d for d in decoded if isinstance(d, ContactRecord)]
        agreed = dict(zip((r.contact_id for r in records),
                          agreed_store.get_many([r.contact_id for r in records]), strict=True))
        for item in decoded:
            if isinstance(item, ContactRecord):
                in_afas.add(item.contact_id)
                tally.planned(plan_contact(item, agreed[item.contact_id], in_spotler.get(item.contact_id), mapping))
            else:
                if item.contact_id is not None:
                    in_afas.add(item.contact_id)
                tally.rejected(item)
        if progress:
            progress(tally.report)
    only_spotler = sorted(set(in_spotler) - in_afas)
    tally.report.gone_from_afas = sum(
        1 for start in range(0, len(only_spotler), 1000)
        for a in agreed_store.get_many(only_spotler[start:start + 1000]) if a is not None
    )
    tally.report.unknown_to_afas = len(only_spotler) - tally.report.gone_from_afas
    tally.report.duration_s = time.perf_counter() - t0
    return tally.report
