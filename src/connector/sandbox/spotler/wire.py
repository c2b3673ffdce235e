"""Spotler Mail+ wire shapes as the sandbox reads and writes them, and its API error."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "AddContactResponse",
    "AddContactsRequest",
    "ApiError",
    "BouncesResponse",
    "Channel",
    "Contact",
    "ContactBounce",
    "ContactIn",
    "ContactRequest",
    "ContactsResponse",
    "ErrorResponse",
    "Paging",
    "Permission",
    "Property",
    "PropertyType",
    "SetEntry",
]

PropertyType = Literal[
    "birthdate", "date", "dateTime", "email", "gender", "int", "mobNr", "money", "postcode",
    "set", "string",
]


class ApiError(Exception):
    """An answer in Spotler's error dialect: ``{errorType, message}`` with a status."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class ErrorResponse(msgspec.Struct):
    errorType: str
    message: str


class SetEntry(msgspec.Struct):
    """One option of a ``set`` property (a permission bit, a list value)."""

    bit: int
    description: str
    rank: int = 0


class Property(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """One field of the account's contact catalogue (``contact/properties/list``)."""

    name: str
    description: str
    type: PropertyType
    entries: list[SetEntry] | None = None


# Incoming: lenient. Read-only fields (created, lastChanged, encryptedId,
# temporary, channels) are not declared, so they are accepted and ignored.
class ContactIn(msgspec.Struct):
    externalId: str | int | None = None
    properties: dict[str, Any] | None = None
    testGroup: bool | None = None


class ContactRequest(msgspec.Struct):
    update: bool | None = None
    purge: bool | None = None
    contact: ContactIn | None = None


class AddContactsRequest(msgspec.Struct):
    update: bool | None = None
    purge: bool | None = None
    contacts: list[ContactIn] | None = None


# Outgoing.
class Channel(msgspec.Struct):
    name: str
    value: bool


class Permission(msgspec.Struct):
    bit: int
    enabled: bool
    description: str


class Contact(msgspec.Struct):
    externalId: str
    created: int
    encryptedId: str
    testGroup: bool
    lastChanged: int
    temporary: bool
    properties: dict[str, Any]
    channels: list[Channel]


class AddContactResponse(msgspec.Struct):
    externalId: str
    code: str
    message: str


class Paging(msgspec.Struct, omit_defaults=True):
    after: int
    next: str | None = None


class ContactsResponse(msgspec.Struct):
    paging: Paging
    contacts: list[Contact]


class ContactBounce(msgspec.Struct, omit_defaults=True):
    date: int
    type: str
    contact: Contact
    encryptedActId: str | None = None


class BouncesResponse(msgspec.Struct):
    paging: Paging
    bounces: list[ContactBounce]
