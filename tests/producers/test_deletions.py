"""A contact gone from the GetConnector: the mapping's ``deletions`` policy, on a full pass."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
import redis

from connector.clients.afas import AfasClient
from connector.producers.afas import AfasProducer, DeletionsHeld
from connector.producers.sink import RedisSink
from connector.sandbox.afas.app import DEFAULT_TOKEN, create_app
from connector.sandbox.server import BackgroundServer
from connector.schemas.events import SpotlerBatch
from connector.schemas.mapping import load_mapping
from connector.schemas.runs import PollResult

MAPPING = load_mapping(None)


@pytest.fixture
def afas() -> Iterator[AfasClient]:
    with BackgroundServer(create_app(contacts=50, seed=3, token=DEFAULT_TOKEN)) as server, \
            AfasClient(f"{server.url}/ProfitRestServices", DEFAULT_TOKEN) as client:
        yield client


def producer(afas: AfasClient, client: redis.Redis, policy: str, sent: list[SpotlerBatch],
             **options: object) -> AfasProducer:
    mapping = msgspec.structs.replace(MAPPING, deletions=policy)
    return AfasProducer(afas, mapping, client, RedisSink(client, sent.append), getconnector="Spotler_Contacts",
                        **options)  # type: ignore[arg-type]


def synced_elsewhere(client: redis.Redis, *ids_on: tuple[str, bool]) -> None:
    """Contacts the link synced earlier (a state in the pre-stamp form) that AFAS no longer lists."""
    for cid, opted_in in ids_on:
        client.set(f"connector:agreed:{cid}", msgspec.msgpack.encode(
            {"email": "x@example.nl", "permissions.1": opted_in, "permissions.2": False,
             "_person": "P", "_organisation": "O"}))


@pytest.mark.parametrize("policy", ["ignore", "unsubscribe"])
def test_gone_contacts_follow_the_policy(afas: AfasClient, redis_client: redis.Redis, policy: str) -> None:
    sent: list[SpotlerBatch] = []
    first = producer(afas, redis_client, policy, sent).poll_once(full=True)
    assert first.gone == 0
    synced_elsewhere(redis_client, ("900001", True), ("900002", False))
    sent.clear()
    result = producer(afas, redis_client, policy, sent, allow_deletions=True).poll_once(full=True)
    assert result.gone == 2
    changes = {c.contact_id: c for batch in sent for c in batch.changes}
    gone = {cid: c for cid, c in changes.items() if cid.startswith("9000")}
    if policy == "ignore":
        assert gone == {}
    else:
        # Only the contact that still had a bit on is written; every bit goes off.
        assert set(gone) == {"900001"}
        assert gone["900001"].changes == {"permissions.1": False}
        assert gone["900001"].blocked is True
        assert (gone["900001"].person_id, gone["900001"].organisation_id) == ("P", "O")


def test_a_contact_missing_from_the_walk_but_still_in_afas_is_not_unsubscribed(
    afas: AfasClient, redis_client: redis.Redis
) -> None:
    sent: list[SpotlerBatch] = []
    live = producer(afas, redis_client, "unsubscribe", sent, allow_deletions=True)
    live.poll_once(full=True)
    alive = next(c for batch in sent for c in batch.changes).contact_id
    synced_elsewhere(redis_client, (alive, True), ("900001", True))
    sent.clear()
    result = PollResult(run_id="t", started_at=0.0)
    live._handle_gone(set(), result)  # a walk that saw neither (the live one moved out of view meanwhile)
    live.sink.flush(result)
    assert result.gone == 1
    assert {c.contact_id for batch in sent for c in batch.changes} == {"900001"}


def test_more_gone_than_one_pass_may_unsubscribe_unsubscribes_nobody(
    afas: AfasClient, redis_client: redis.Redis
) -> None:
    sent: list[SpotlerBatch] = []
    synced_elsewhere(redis_client, *[(str(900000 + n), True) for n in range(3)])
    with pytest.raises(DeletionsHeld, match=r"3 of 3 synced contacts \(100.0%\)"):
        producer(afas, redis_client, "unsubscribe", sent).poll_once(full=True)
    assert [c for batch in sent for c in batch.changes if c.contact_id.startswith("9000")] == []
    assert len({c.contact_id for batch in sent for c in batch.changes}) > 0  # the rest of the pass went out
