"""The hooks of the actors: a written batch or change becomes its events, consent only where it was applied."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from connector.clients.spotler import SpotlerClient
from connector.events import emit
from connector.events.outbox import OUTBOX
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET, create_app
from connector.schemas.events import AfasChange, ContactChange, Value
from connector.state.ordering import Ordering
from connector.writers.spotler import write_batch

START = 1_700_000_000_000
pytestmark = pytest.mark.usefixtures("events_on")


@pytest.fixture
def spotler() -> Iterator[SpotlerClient]:
    with BackgroundServer(create_app()) as server, \
            SpotlerClient(f"{server.url}/integrationservice-1.1.0", DEFAULT_KEY, DEFAULT_SECRET) as client:
        yield client


def change(cid: str, changes: dict[str, Value], *, new: bool) -> ContactChange:
    return ContactChange(contact_id=cid, changes=changes, person_id="P1", organisation_id="O1", new=new,
                         stamps=dict.fromkeys(changes, START), bases=dict.fromkeys(changes, 0))


def bodies(client: redis.Redis) -> list[dict[str, object]]:
    return [json.loads(fields[b"e"]) for _, fields in client.xrange(OUTBOX)]


def test_a_written_batch_is_synced_events_each_followed_by_its_consent(
    spotler: SpotlerClient, redis_client: redis.Redis,
) -> None:
    batch = [change(str(n), {"email": f"c{n}@example.org", "lastName": f"Naam{n}", "permissions.1": n == 1},
                    new=True) for n in (1, 2)]
    outcome = write_batch(batch, client=spotler, ordering=Ordering(redis_client))
    emit.synced_to_spotler(redis_client, outcome.written)  # what upsert_batch does after write_batch
    found = bodies(redis_client)
    assert [(b["kind"], b["contact_id"]) for b in found] == [
        ("contact.synced", "1"), ("consent.changed", "1"), ("contact.synced", "2"), ("consent.changed", "2")]
    assert found[0]["fields"] == ["email", "lastName", "permissions.1"]
    assert found[0]["created"] is True
    assert {k: found[1][k] for k in ("system", "field", "bit", "new", "old")} == {
        "system": "spotler", "field": "permissions.1", "bit": 1, "new": True, "old": None}
    assert found[3]["new"] is False
    assert "example.org" not in json.dumps(found)
    assert "Naam" not in json.dumps(found)


def test_a_permission_the_agreed_state_does_not_hold_is_no_consent_event(redis_client: redis.Redis) -> None:
    # Written, as far as the batch goes, but superseded: the agreed state (here: none) holds another value.
    emit.synced_to_spotler(redis_client, [change("9", {"permissions.1": True}, new=False)])
    assert [b["kind"] for b in bodies(redis_client)] == ["contact.synced"]


def test_a_change_written_back_to_afas_names_its_connectors_and_consent(
    spotler: SpotlerClient, redis_client: redis.Redis,
) -> None:
    write_batch([change("5", {"email": "c5@example.org", "permissions.1": False}, new=True)], client=spotler,
                ordering=Ordering(redis_client))
    redis_client.delete(OUTBOX)
    # The agreed state after the AFAS write holds the opt-out again; a second field was superseded.
    back = AfasChange(contact_id="5", person_id="P5", organisation_id="O5",
                      changes={"permissions.1": False, "lastName": "X"})
    emit.written_back(redis_client, back, ["KnContact"], ["lastName"])
    found = bodies(redis_client)
    assert [(b["kind"], b["contact_id"]) for b in found] == [("contact.written_back", "5"), ("consent.changed", "5")]
    assert (found[0]["fields"], found[0]["connectors"], found[0]["person_id"]) == (["permissions.1"], ["KnContact"],
                                                                                   "P5")
    assert (found[1]["system"], found[1]["new"], found[1]["old"]) == ("afas", False, True)


def test_a_change_afas_took_nothing_of_is_no_event(redis_client: redis.Redis) -> None:
    emit.written_back(redis_client, AfasChange(contact_id="5", person_id="P", organisation_id="O",
                                               changes={"permissions.1": True}), [], ["permissions.1"])
    assert not redis_client.exists(OUTBOX)
