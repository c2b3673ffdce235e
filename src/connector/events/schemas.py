"""The link's domain events as published on the bus: msgspec Structs, one tagged union, JSON.

Every event carries ``kind`` (the tag, also the routing key on the
``connector.events`` topic exchange), ``schema_version``, a unique
``event_id`` (also the AMQP message id: consumers deduplicate on it, since
publishing is at least once), ``contact_id`` (AFAS ContactId; None only for
a record that had none) and ``occurred_at`` (UTC).

Events name contacts, fields and rules, never values: no e-mail address, no
name, no address ever goes on the bus. The one exception is consent, which is
a yes/no: ``consent.changed`` carries the permission bit and its old and new
state. The schema evolves as queue messages do: fields are only added, with
defaults, and ``schema_version`` goes up when a consumer would need to know.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

import msgspec

__all__ = [
    "EXCHANGE",
    "SCHEMA_VERSION",
    "ChangeDeadLettered",
    "ConflictSettled",
    "ConsentChanged",
    "ContactSynced",
    "ContactWrittenBack",
    "DomainEvent",
    "RecordRejected",
    "decode_event",
    "encode_event",
    "new_id",
    "now",
    "routing_key",
]

EXCHANGE = "connector.events"  # a durable topic exchange
SCHEMA_VERSION = 1


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime:
    return datetime.now(UTC)


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    event_id: str = msgspec.field(default_factory=new_id)
    contact_id: str | None
    occurred_at: datetime = msgspec.field(default_factory=now)
    schema_version: int = SCHEMA_VERSION


class ContactSynced(_Event, frozen=True, kw_only=True, tag="contact.synced"):
    """Spotler accepted a contact's change (``POST contact/list`` answered OK for it)."""

    fields: list[str]  # the field names the link wrote (Spotler names, ``permissions.<bit>``)
    created: bool = False  # the contact was new to Spotler
    reassert: bool = False  # put back a value Spotler held before our own write overtook it


class ContactWrittenBack(_Event, frozen=True, kw_only=True, tag="contact.written_back"):
    """AFAS accepted a change from Spotler (one or more UpdateConnector PUTs)."""

    fields: list[str]
    connectors: list[str]  # KnContact, KnPerson, KnOrganisation: the PUTs AFAS accepted
    person_id: str | None = None
    organisation_id: str | None = None
    reassert: bool = False


class ConsentChanged(_Event, frozen=True, kw_only=True, tag="consent.changed"):
    """A permission bit the link wrote into ``system`` (Spotler, or back into AFAS)."""

    system: Literal["spotler", "afas"]
    field: str  # ``permissions.<bit>``
    bit: int | None  # the Spotler permission bit (None: a field name of another form)
    new: bool
    old: bool | None = None  # what the link held before; None for a contact new to the target


class RecordRejected(_Event, frozen=True, kw_only=True, tag="record.rejected"):
    """A row or feed item the link will not sync until it is fixed (first seen, or its reason changed)."""

    source: str  # afas, spotler
    field: str
    reason: str  # a rule's wording, never the value


class ChangeDeadLettered(_Event, frozen=True, kw_only=True, tag="change.dead_lettered"):
    """The workers gave up on a change of this contact; ``connector dlq`` holds it (``letter_id``)."""

    letter_id: str
    queue: str
    reason: str  # exhausted, fatal, expired, orphaned
    error_class: str
    attempts: int


class ConflictSettled(_Event, frozen=True, kw_only=True, tag="conflict.settled"):
    """A field changed on both sides since they agreed, settled by its rule."""

    field: str
    rule: str
    winner: str  # afas, spotler


DomainEvent = (
    ContactSynced | ContactWrittenBack | ConsentChanged | RecordRejected | ChangeDeadLettered | ConflictSettled
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DomainEvent)


def encode_event(event: DomainEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(body: bytes | str) -> DomainEvent:
    """An event from its JSON body; unknown fields are ignored (a newer producer), an unknown kind raises."""
    event: DomainEvent = _decoder.decode(body)
    return event


def routing_key(event: DomainEvent) -> str:
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
