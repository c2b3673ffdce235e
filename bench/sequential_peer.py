"""A well-written sequential AFAS → Spotler sync: the fair peer the connector is measured against.

What a careful engineer would write in an afternoon, with no queue, no
workers and no state: read the GetConnector by key (``ContactId > last``,
skip 0, ``--take`` rows a page, 1000 by default), decode every row as the
connector does, and send the valid contacts in full ``POST contact/list``
batches of 100 (a batch may span two pages), one request at a time. Requests
are spaced to ``SPOTLER_RATE_PER_S`` (each starts no sooner than 1/rate after
the previous one started, its own catalogue read included); a 429 is honoured
by sleeping its Retry-After and sending the same batch again; a 5xx or a
timeout is retried with a short backoff; a contact Spotler answers with a
non-fatal per-contact error goes into a later batch, a few times at most.
It writes the same values the connector writes (the same row decoding and
contact building). Configuration comes from the connector's own environment
variables (AFAS_*, SPOTLER_*, SPOTLER_RATE_PER_S).

    python bench/sequential_peer.py [--take 1000] [--json]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import msgspec

from connector import runtime
from connector.clients.afas import AfasClient
from connector.clients.spotler import SpotlerClient
from connector.errors import RateLimited, RetriableError
from connector.schemas.events import ContactChange
from connector.schemas.mapping import Mapping
from connector.schemas.spotler import Contact
from connector.settings import Settings
from connector.sync.diff import diff
from connector.sync.rows import ContactRecord, decode_row
from connector.sync.to_spotler import contact_for
from connector.writers.spotler import FATAL_CODES

__all__ = ["PeerResult", "sync_sequentially"]

BATCH = 100
MAX_ATTEMPTS = 8
MAX_ITEM_ATTEMPTS = 4


class PeerResult(msgspec.Struct, kw_only=True):
    """What one sequential pass did."""

    rows: int = 0
    invalid: int = 0
    written: int = 0
    refused: int = 0
    failed: int = 0
    batches: int = 0
    rate_limited: int = 0  # 429 answers slept on
    retried: int = 0
    afas_requests: int = 0
    spotler_requests: int = 0
    waited_s: float = 0.0  # slept to keep the rate
    wall_s: float = 0.0


class Pacer:
    """Each request starts at least 1/rate after the previous one started."""

    def __init__(self, rate_per_s: float, result: PeerResult) -> None:
        self.interval = 1.0 / rate_per_s
        self.result = result
        self.last = float("-inf")

    def wait(self) -> None:
        delay = self.last + self.interval - time.monotonic()
        if delay > 0:
            self.result.waited_s += delay
            time.sleep(delay)
        self.last = time.monotonic()


def _send(spotler: SpotlerClient, contacts: Sequence[Contact], pacer: Pacer, result: PeerResult) -> list[Contact]:
    """One batch until Spotler answers it; returns the contacts to try again (non-fatal per-contact errors)."""
    for attempt in range(MAX_ATTEMPTS):
        pacer.wait()
        result.spotler_requests += 1
        try:
            answers = spotler.upsert_many(contacts)
        except RateLimited as exc:
            result.rate_limited += 1
            time.sleep(exc.retry_after if exc.retry_after is not None else 1.0)
            continue
        except RetriableError as exc:
            result.retried += 1
            time.sleep(exc.retry_after if exc.retry_after is not None else min(8.0, 0.5 * 2**attempt))
            continue
        result.batches += 1
        by_id = {a.externalId: a.code for a in answers}
        again: list[Contact] = []
        for contact in contacts:
            code = by_id.get(contact.externalId)
            if code == "OK":
                result.written += 1
            elif code in FATAL_CODES:
                result.refused += 1
            else:
                again.append(contact)
        return again
    result.failed += len(contacts)
    return []


def sync_sequentially(
    afas: AfasClient, spotler: SpotlerClient, mapping: Mapping, *, getconnector: str, rate_per_s: float,
    take: int = 1000,
) -> PeerResult:
    """Read every row by key and write the valid contacts in batches of 100, one request at a time."""
    started = time.perf_counter()
    result = PeerResult()
    pacer = Pacer(rate_per_s, result)
    pacer.wait()
    result.spotler_requests += 1
    all_bits = [int(entry.bit) for prop in spotler.properties() if prop.name == "permissions"
                for entry in (prop.entries or [])]
    pending: list[Contact] = []
    tries: dict[str, int] = {}

    def drain(final: bool) -> None:
        while len(pending) >= BATCH or (final and pending):
            batch, pending[:] = pending[:BATCH], pending[BATCH:]
            for contact in _send(spotler, batch, pacer, result):
                tries[contact.externalId] = tries.get(contact.externalId, 0) + 1
                if tries[contact.externalId] < MAX_ITEM_ATTEMPTS:
                    pending.append(contact)
                else:
                    result.failed += 1

    for rows in afas.iter_pages(getconnector, key=mapping.keys.contact_id, page_size=take):
        result.afas_requests += 1
        for row in rows:
            result.rows += 1
            record = decode_row(row, mapping)
            if not isinstance(record, ContactRecord):
                result.invalid += 1
                continue
            change = ContactChange(contact_id=record.contact_id, changes=diff(record.values, None),
                                   key=record.contact_id, blocked=record.blocked)
            pending.append(contact_for(change, all_bits))
        drain(final=False)
    drain(final=True)
    result.wall_s = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--take", type=int, default=1000, help="rows per GetConnector page (at least 100)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args()
    if args.take < BATCH:
        parser.error(f"--take must be at least {BATCH}")

    settings = Settings.from_env()
    with runtime.afas_client(settings) as afas, runtime.spotler_client(settings) as spotler:
        result = sync_sequentially(afas, spotler, runtime.mapping(settings), getconnector=settings.afas_getconnector,
                                   rate_per_s=settings.spotler_rate_per_s, take=args.take)
    if args.json:
        print(msgspec.json.encode(result).decode())
        return
    for name in result.__struct_fields__:
        print(f"{name:<17} {getattr(result, name)}")


if __name__ == "__main__":
    main()
