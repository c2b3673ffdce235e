"""AFAS → Spotler end to end: real Redis, both sandboxes, a producer and two worker processes."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.e2e.helpers import MAPPING, afas_expectation, spotler_contacts, spotler_values, wait_for_quiet

from connector.clients.afas import AfasClient, page_size_for
from connector.producers.sink import BATCH_SIZE
from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.stack import Stack, wait_until
from connector.state.rejections import RejectionStore
from connector.state.runs import RunHistory
from connector.sync.rows import ContactRecord, decode_row

pytestmark = pytest.mark.e2e

POLL_INTERVAL_S = 2.0
ARRIVAL_DEADLINE_S = 120  # a correctness check; the latency itself is bench/latency.py's figure


@pytest.fixture
def stack(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Stack]:
    with Stack(tmp_path, redis_url=redis_url, contacts=1500, seed=7,
               env={"POLL_INTERVAL_S": str(POLL_INTERVAL_S)}) as running:
        running.start_sandboxes()
        yield running


def valid_per_page(stack: Stack) -> list[int]:
    """Valid rows in each GetConnector page, paged as the producer pages (by key, 150,000 cells a page)."""
    with AfasClient(f"{stack.afas_url}/ProfitRestServices", DEFAULT_TOKEN) as client:
        return [
            sum(isinstance(decode_row(row, MAPPING), ContactRecord) for row in page)
            for page in client.iter_pages("Spotler_Contacts", key=MAPPING.keys.contact_id,
                                          page_size=page_size_for(len(MAPPING.columns)))
        ]


def start_link(stack: Stack, workers: int = 2) -> None:
    for n in range(workers):
        stack.start(f"spotler-worker-{n + 1}", "work", "--queue", "spotler", "--threads", "4")
    stack.start("afas-producer", "produce", "afas")


def test_initial_sync_is_complete_and_correct(stack: Stack, redis_client: redis.Redis) -> None:
    start_link(stack)
    wait_for_quiet(stack, redis_client)
    valid, rejected = afas_expectation(stack)
    in_spotler = spotler_contacts(stack)

    # Every valid contact is there with the mapped values; nothing else was written.
    assert set(in_spotler) == set(valid)
    wrong = {cid: (spotler_values(c), valid[cid].values) for cid, c in in_spotler.items()
             if spotler_values(c) != valid[cid].values}
    assert wrong == {}
    # Every invalid row has a rejection record with its reason.
    records = {r.contact_id: r for r in RejectionStore(redis_client).list()}
    assert rejected, "the seed holds invalid rows"
    for cid, rejection in rejected.items():
        assert cid in records, cid
        assert records[cid].reason == rejection.reason
        assert records[cid].field == rejection.field
    # The only writes to Spotler were bulk upserts; the rest were reads (catalogue, change feed).
    routes = stack.spotler("GET", "requests")["routes"]
    assert {r for r in routes if not r.startswith("GET ")} == {"POST /contact/list"}
    # The producer flushes once per GetConnector page and cuts each flush into batches of at
    # most 100; each batch is one request (no faults here, so no retries and no re-sends).
    per_page = valid_per_page(stack)
    assert sum(per_page) == len(valid)
    batches = sum(math.ceil(n / BATCH_SIZE) for n in per_page)
    assert routes["POST /contact/list"] == batches
    first = next(r for r in reversed(RunHistory(redis_client).latest("afas", limit=10_000)) if r.changed)
    assert (first.changed, first.enqueued_messages, first.written) == (len(valid), batches, len(valid))


def test_second_pass_with_nothing_changed_writes_nothing(stack: Stack, redis_client: redis.Redis) -> None:
    start_link(stack)
    wait_for_quiet(stack, redis_client)
    valid, rejected = afas_expectation(stack)
    stack.spotler("DELETE", "requests")
    resync = stack.start("resync", "resync")
    assert resync.wait(120) == 0, resync.output()[-2000:]
    assert re.search(
        rf"resync \w+: {len(valid) + len(rejected)} rows read, 0 changed \(0 messages\), "
        rf"{len(valid)} unchanged, {len(rejected)} rejected, 0 no longer in AFAS", resync.output(),
    ), resync.output()[-2000:]
    wait_for_quiet(stack, redis_client)
    assert stack.spotler("GET", "requests")["routes"].get("POST /contact/list", 0) == 0


@pytest.mark.parametrize(
    ("entity", "key_field", "fields", "prop", "value"),
    [
        ("contact", "ContactId", {"EmAd": "nieuw.adres@example.nl"}, "email", "nieuw.adres@example.nl"),
        ("person", "PersonNo", {"FiNm": "Gerrit-Jan"}, "firstName", "Gerrit-Jan"),
        ("organisation", "OrganisationId", {"Nm": "Vries & Zonen B.V."}, "organisation", "Vries & Zonen B.V."),
    ],
)
def test_a_change_reaches_spotler(
    stack: Stack, redis_client: redis.Redis, entity: str, key_field: str, fields: dict[str, str],
    prop: str, value: str,
) -> None:
    start_link(stack)
    wait_for_quiet(stack, redis_client)
    valid, _ = afas_expectation(stack)
    record = valid[sorted(valid, key=int)[10]]
    ident = {"ContactId": record.contact_id, "PersonNo": record.person_id,
             "OrganisationId": record.organisation_id}[key_field]
    stack.afas("POST", "edit", json={"entity": entity, "id": ident, "fields": fields})

    def arrived() -> bool:
        return bool(stack.spotler("GET", f"contacts/{record.contact_id}")["properties"].get(prop) == value)

    wait_until(arrived, timeout_s=ARRIVAL_DEADLINE_S, interval_s=0.2)
    # Only that contact's mapped value moved (an organisation edit also reaches its colleagues).
    after = spotler_values(stack.spotler("GET", f"contacts/{record.contact_id}"))
    assert after == {**record.values, prop: value}
