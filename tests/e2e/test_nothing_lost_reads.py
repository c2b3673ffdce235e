"""Reads that fail or shift under the producers: AFAS's GetConnector failing part-way, Spotler's feed changing.

The whole link end to end; the readers themselves are unit-tested in
tests/clients (keyset paging, tests/clients/test_spotler_feed_*.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis
from tests.e2e.test_nothing_lost import (
    GETCONNECTOR,
    afas_edit,
    assert_in_agreement,
    dead_letters,
    make_stack,
    mapped,
    plain,
    request_log,
    settle,
    start_link,
)

from connector.stack import Stack, wait_until
from connector.state.runs import RunHistory

pytestmark = pytest.mark.e2e

__all__ = ["make_stack"]  # the fixture, shared with the main module


# The AFAS sandbox draws one number per API call from Random(seed): with this seed and an
# error rate of 0.3 the calls go ok, fail, ok, fail, ok, ok, fail, ... Only the AFAS producer
# calls AFAS, and the first pass takes two pages: the first two passes fail on their second page.
# Afterwards each poll is one call: with the same seed again, the second and fourth polls fail.
PART_WAY_SEED = 7


def test_afas_read_failures_during_the_first_full_sync_and_the_polls(
    make_stack: Callable[..., Stack], redis_client: redis.Redis
) -> None:
    stack = make_stack(12_000, seed=22)
    stack.afas("PUT", "faults", json={"error_rate": 0.3, "error_status": 500, "seed": PART_WAY_SEED})
    start_link(stack, workers=2, sources=("afas",))
    history = RunHistory(redis_client)
    wait_until(lambda: history.latest("afas"), timeout_s=600, interval_s=0.5)
    reads = [r["status"] for r in request_log(stack, "afas") if r["route"] == GETCONNECTOR]
    assert reads[:6] == [200, 500, 200, 500, 200, 200], "two first passes failed on their second page"
    assert history.latest("afas")[-1].read == 12_000
    stack.afas("PUT", "faults", json={})
    settle(stack, redis_client, cycles=1, sources=("afas",), timeout_s=600)
    valid = assert_in_agreement(stack)

    # Incremental polls while reads fail: edits in rounds, each round followed by a poll's read.
    edited = plain(valid)[:40:4]
    phase = time.time()
    stack.afas("PUT", "faults", json={"error_rate": 0.3, "error_status": 500, "seed": PART_WAY_SEED})
    for n in range(6):
        for i, cid in enumerate(edited):
            if (i + n) % 2 == 0:
                afas_edit(stack, "person", valid[cid].person_id, FiNm=f"Ronde{n}-{cid}")
            else:
                afas_edit(stack, "contact", cid, EmAd=f"ronde{n}.{cid}@voorbeeld.nl")
        mark = time.time()
        wait_until(lambda m=mark: any(r["route"] == GETCONNECTOR for r in request_log(stack, "afas", m)),
                   timeout_s=60, interval_s=0.2)
    failed = [r for r in request_log(stack, "afas", phase) if r["route"] == GETCONNECTOR and r["status"] == 500]
    assert failed, "some incremental reads failed"
    stack.afas("PUT", "faults", json={})
    settle(stack, redis_client, sources=("afas",))

    last = {cid: {"firstName": f"Ronde4-{cid}" if i % 2 == 0 else f"Ronde5-{cid}",
                  "email": f"ronde5.{cid}@voorbeeld.nl" if i % 2 == 0 else f"ronde4.{cid}@voorbeeld.nl"}
            for i, cid in enumerate(edited)}
    expected = {cid: {**v, **last.get(cid, {})} for cid, v in mapped(valid).items()}
    assert_in_agreement(stack, expected)
    assert dead_letters(redis_client) == 0


# More than one page of Spotler's feed (the Spotler producer asks 1,000 items a page).
BULK = 1200


@pytest.mark.timeout(480)
def test_a_feed_that_changes_while_it_is_paged_loses_no_edit(
    make_stack: Callable[..., Stack], redis_client: redis.Redis
) -> None:
    stack = make_stack(1500, seed=27)
    start_link(stack, workers=2)
    settle(stack, redis_client, cycles=2)
    valid = assert_in_agreement(stack)
    contacts = plain(valid)
    bulk, others = contacts[:BULK], contacts[BULK:BULK + 30]
    assert (len(bulk), len(others)) == (BULK, 30)
    history = RunHistory(redis_client)

    # The others are edited once before the bulk edit, so their items sit in the feed's window ahead
    # of it; each later edit takes one out of that place while the window is read.
    for cid in others:
        stack.spotler("POST", "edit", json={"externalId": cid, "properties": {"firstName": f"Voor-{cid}"}})
    stack.spotler("PUT", "faults", json={"latency_ms": 200})  # every feed page takes a while
    stack.spotler("POST", "contacts", json={"update": True, "contacts": [
        {"externalId": cid, "properties": {"lastName": f"Bulk-{cid}"}} for cid in bulk]})
    edited_at: list[float] = []

    def big_polls_with_edits() -> int:
        big = [r for r in history.latest("spotler", 1000) if r.read > 1000]
        return sum(1 for r in big if any(r.started_at < t < r.started_at + r.duration_s for t in edited_at))

    rounds = 0
    deadline = time.monotonic() + 240
    while big_polls_with_edits() < 3:
        assert time.monotonic() < deadline, "no poll of the bulk edit ran while contacts were edited"
        for cid in others:
            edit = {"externalId": cid, "properties": {"firstName": f"Tijdens{rounds}-{cid}"}}
            stack.spotler("POST", "edit", json=edit)
            edited_at.append(time.time())
        rounds += 1
    stack.spotler("PUT", "faults", json={})
    settle(stack, redis_client)

    expected = mapped(valid)
    for cid in bulk:
        expected[cid] = {**expected[cid], "lastName": f"Bulk-{cid}"}
    for cid in others:
        expected[cid] = {**expected[cid], "firstName": f"Tijdens{rounds - 1}-{cid}"}
    assert_in_agreement(stack, expected)
    assert dead_letters(redis_client) == 0
