"""A contact gone from the GetConnector: the mapping's ``deletions`` policy, on a full pass."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
import redis

from connector.clients.afas import AfasClient
from connector.producers.afas import AfasProducer
from connector.sandbox.afas.app import DEFAULT_TOKEN, create_app
from connector.sandbox.server import BackgroundServer
from connector.schemas.events import SpotlerBatch
from connector.schemas.mapping import load_mapping

MAPPING = load_mapping(None)


@pytest.fixture
def afas() -> Iterator[AfasClient]:
    with BackgroundServer(create_app(contacts=50, seed=3, token=DEFAULT_TOKEN)) as server, \
            AfasClient(f"{server.url}/ProfitRestServices", DEFAULT_TOKEN) as client:
        yield client


def producer(afas: AfasClient, client: redis.Redis, policy: str, sent: list[SpotlerBatch]) -> AfasProducer:
    mapping = msgspec.structs.replace(MAPPING, deletions=policy)
    return AfasProducer(afas, mapping, client, sent.append, getconnector="Spotler_Contacts")


@pytest.mark.parametrize("policy", ["ignore", "unsubscribe"])
def test_gone_contacts_follow_the_policy(afas: AfasClient, redis_client: redis.Redis, policy: str) -> None:
    sent: list[SpotlerBatch] = []
    first = producer(afas, redis_client, policy, sent).poll_once(full=True)
    assert first.gone == 0
    # Two contacts the link synced earlier that AFAS no longer lists.
    for cid, opted_in in (("900001", True), ("900002", False)):
        redis_client.set(f"connector:agreed:{cid}", msgspec.msgpack.encode(
            {"email": "x@example.nl", "permissions.1": opted_in, "permissions.2": False,
             "_person": "P", "_organisation": "O"}))
    sent.clear()
    result = producer(afas, redis_client, policy, sent).poll_once(full=True)
    assert result.gone == 2
    changes = {c.contact_id: c for batch in sent for c in batch.changes}
    if policy == "ignore":
        assert changes == {}
    else:
        # Only the contact that still had a bit on is written; every bit goes off.
        assert set(changes) == {"900001"}
        assert changes["900001"].changes == {"permissions.1": False}
        assert changes["900001"].blocked is True
