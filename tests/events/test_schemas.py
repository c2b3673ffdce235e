"""The events' schemas: tagged JSON, a version and an id in each, names and ids but no personal values."""

from __future__ import annotations

import json

import msgspec
import pytest

from connector.events import schemas
from connector.events.schemas import (
    ChangeDeadLettered,
    ConflictSettled,
    ConsentChanged,
    ContactSynced,
    ContactWrittenBack,
    DomainEvent,
    RecordRejected,
    decode_event,
    encode_event,
    routing_key,
)

SAMPLES: list[DomainEvent] = [
    ContactSynced(contact_id="10001", fields=["email", "permissions.1"], created=True),
    ContactWrittenBack(contact_id="10001", fields=["permissions.1"], connectors=["KnContact"], person_id="P1",
                       organisation_id="O1"),
    ConsentChanged(contact_id="10001", system="afas", field="permissions.1", bit=1, new=False, old=True),
    RecordRejected(contact_id=None, source="afas", field="ContactId", reason="missing contact id"),
    ChangeDeadLettered(contact_id="10001", letter_id="m-1", queue="spotler", reason="fatal",
                       error_class="RecordRejected", attempts=1),
    ConflictSettled(contact_id="10001", field="lastName", rule="newest", winner="spotler"),
]
# Names an event may carry: ids, field names, rules, outcomes, consent booleans. No value field.
ALLOWED = {
    "event_id", "contact_id", "occurred_at", "schema_version", "fields", "created", "reassert", "connectors",
    "person_id", "organisation_id", "system", "field", "bit", "new", "old", "source", "reason", "letter_id",
    "queue", "error_class", "attempts", "rule", "winner",
}


@pytest.mark.parametrize("event", SAMPLES, ids=routing_key)
def test_an_event_round_trips_as_json_with_its_kind_version_and_id(event: DomainEvent) -> None:
    body = encode_event(event)
    data = json.loads(body)
    assert data["kind"] == routing_key(event)
    assert data["schema_version"] == schemas.SCHEMA_VERSION == 1
    assert len(data["event_id"]) == 32
    assert data["occurred_at"].endswith("Z")
    assert decode_event(body) == event


def test_the_routing_keys_are_the_documented_kinds() -> None:
    assert [routing_key(e) for e in SAMPLES] == [
        "contact.synced", "contact.written_back", "consent.changed", "record.rejected", "change.dead_lettered",
        "conflict.settled",
    ]


def test_event_ids_are_unique() -> None:
    assert len({ContactSynced(contact_id="1", fields=[]).event_id for _ in range(1000)}) == 1000


def test_no_event_has_a_field_for_a_value() -> None:
    for kind in (ContactSynced, ContactWrittenBack, ConsentChanged, RecordRejected, ChangeDeadLettered,
                 ConflictSettled):
        assert set(kind.__struct_fields__) <= ALLOWED, kind


def test_a_consumer_of_this_version_reads_an_event_with_fields_added_later() -> None:
    data = json.loads(encode_event(SAMPLES[0]))
    data["added_in_a_later_version"] = "x"
    assert decode_event(json.dumps(data)) == SAMPLES[0]


def test_an_unknown_kind_is_refused() -> None:
    data = json.loads(encode_event(SAMPLES[0]))
    data["kind"] = "contact.teleported"
    with pytest.raises(msgspec.ValidationError):
        decode_event(json.dumps(data))
