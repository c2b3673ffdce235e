"""The naive AFAS → Spotler sync the connector is measured against.

Reads the GetConnector page by page (take 100, ordered by ContactId) and
upserts every valid contact on its own: one signed ``POST contact`` with
``update: true`` per contact, in order, one at a time. A 429 is honoured by
sleeping its Retry-After; a 5xx or a timeout is retried a few times. It writes
the same values the connector writes (the same row decoding and contact
building), so the two end in the same Spotler state; it only spends far more
requests and time getting there. It pages by skip, as a naive client does,
so each later page waits for its skip on the AFAS sandbox (its deep-skip model
is on unless the sandbox was started with ``--skip-ms-per-100k 0``), as it
would on AFAS. Configuration comes from the connector's own
environment variables (AFAS_BASE_URL, AFAS_TOKEN, SPOTLER_BASE_URL, SPOTLER_KEY,
SPOTLER_SECRET).

    python bench/naive_baseline.py [--take 100] [--json]
"""

from __future__ import annotations

import argparse
import time

import msgspec

from connector import runtime
from connector.clients.afas import AfasClient
from connector.clients.spotler import SpotlerClient
from connector.errors import RateLimited, RecordRejected, RetriableError
from connector.schemas.events import ContactChange
from connector.schemas.mapping import Mapping
from connector.schemas.spotler import Contact
from connector.settings import Settings
from connector.sync.diff import diff
from connector.sync.rows import ContactRecord, decode_row
from connector.sync.to_spotler import contact_for

__all__ = ["NaiveResult", "sync_naively"]

MAX_ATTEMPTS = 8


class NaiveResult(msgspec.Struct, kw_only=True):
    """What one naive pass did."""

    rows: int = 0
    upserted: int = 0
    invalid: int = 0
    refused: int = 0
    failed: int = 0
    rate_limited: int = 0
    retried: int = 0
    afas_requests: int = 0
    spotler_requests: int = 0
    wall_s: float = 0.0


def _upsert(client: SpotlerClient, contact: Contact, result: NaiveResult) -> None:
    """One contact, one request; 429 → sleep Retry-After and again, 5xx/timeout → a few more tries."""
    for attempt in range(MAX_ATTEMPTS):
        result.spotler_requests += 1
        try:
            client.upsert(contact)
        except RateLimited as exc:
            result.rate_limited += 1
            time.sleep(exc.retry_after if exc.retry_after is not None else 1.0)
            continue
        except RecordRejected:
            result.refused += 1
            return
        except RetriableError as exc:
            result.retried += 1
            time.sleep(exc.retry_after if exc.retry_after is not None else min(8.0, 0.5 * 2**attempt))
            continue
        result.upserted += 1
        return
    result.failed += 1


def sync_naively(
    afas: AfasClient, spotler: SpotlerClient, mapping: Mapping, *, getconnector: str, take: int = 100
) -> NaiveResult:
    """Read every row and upsert each valid contact with its own request."""
    started = time.perf_counter()
    result = NaiveResult()
    result.spotler_requests += 1
    all_bits = [
        int(entry.bit)
        for prop in spotler.properties()
        if prop.name == "permissions"
        for entry in (prop.entries or [])
    ]
    skip = 0
    while True:
        rows = afas.get_page(getconnector, order_by=[mapping.keys.contact_id], skip=skip, take=take)
        result.afas_requests += 1
        for row in rows:
            result.rows += 1
            record = decode_row(row, mapping)
            if not isinstance(record, ContactRecord):
                result.invalid += 1
                continue
            change = ContactChange(
                contact_id=record.contact_id,
                changes=diff(record.values, None),
                key=record.contact_id,
                blocked=record.blocked,
            )
            _upsert(spotler, contact_for(change, all_bits), result)
        if len(rows) < take:
            break
        skip += len(rows)
    result.wall_s = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--take", type=int, default=100, help="rows per GetConnector page")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args()

    settings = Settings.from_env()
    with runtime.afas_client(settings) as afas, runtime.spotler_client(settings) as spotler:
        result = sync_naively(
            afas, spotler, runtime.mapping(settings), getconnector=settings.afas_getconnector, take=args.take
        )
    if args.json:
        print(msgspec.json.encode(result).decode())
        return
    for name in result.__struct_fields__:
        print(f"{name:<17} {getattr(result, name)}")


if __name__ == "__main__":
    main()
