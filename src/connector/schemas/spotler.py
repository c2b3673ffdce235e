"""Spotler Mail+ wire shapes: contacts, permissions, feeds, properties, errors.

Response shapes ignore unknown fields, so a new field on Spotler's side never
breaks a decode. ``created``, ``lastChanged`` and a bounce's ``date`` are
epoch milliseconds; a value below 10**11 is taken as seconds and scaled.
Consent counts only from real JSON booleans: a permission whose ``enabled``
is a string, a number or null is neither an opt-in nor an opt-out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "PERMISSIONS",
    "AddContactResult",
    "AddContactsRequest",
    "Bounce",
    "BouncesPage",
    "Channel",
    "Contact",
    "ContactRequest",
    "ContactsPage",
    "ErrorBody",
    "FeedProblem",
    "Paging",
    "Permission",
    "Property",
    "PropertyEntry",
    "epoch_ms",
    "permissions_problem",
]

PERMISSIONS = "permissions"
_SECONDS_BELOW = 10**11


def epoch_ms(value: int | None) -> int | None:
    """Normalise an epoch timestamp to milliseconds (values < 10**11 are seconds)."""
    if value is None or abs(value) >= _SECONDS_BELOW:
        return value
    return value * 1000


def _json_type(value: object) -> str:
    """The JSON type of a decoded value, for a reason text that never shows the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _is_bit(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def permissions_problem(properties: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(field, reason)`` when the ``permissions`` property is not ``[{bit: int, enabled: bool}]``."""
    raw = properties.get(PERMISSIONS)
    if raw is None:
        return None
    if not isinstance(raw, list):
        return PERMISSIONS, f"expected an array, got {_json_type(raw)}"
    for item in raw:
        if isinstance(item, Permission):
            continue
        if not isinstance(item, Mapping):
            return PERMISSIONS, f"expected an object per permission, got {_json_type(item)}"
        bit = item.get("bit")
        if not _is_bit(bit):
            return PERMISSIONS, f"a permission's bit must be an integer, got {_json_type(bit)}"
        if "enabled" not in item:
            return f"{PERMISSIONS}.{bit}", "enabled is missing"
        enabled = item["enabled"]
        if not isinstance(enabled, bool):
            return f"{PERMISSIONS}.{bit}", f"enabled must be a JSON boolean, got {_json_type(enabled)}"
    return None


class Permission(msgspec.Struct, frozen=True, omit_defaults=True):
    """One bit of the ``permissions`` set property (``description`` only on reads)."""

    bit: int
    enabled: bool
    description: str | UnsetType = UNSET


class Channel(msgspec.Struct, frozen=True):
    """A channel (EMAIL, SMS) and whether the contact can be reached on it."""

    name: str
    value: bool


class Contact(msgspec.Struct, omit_defaults=True):
    """A Mail+ contact; read-only fields are ``None`` when not known."""

    externalId: str
    properties: dict[str, Any] = {}
    created: int | None = None
    lastChanged: int | None = None
    encryptedId: str | None = None
    testGroup: bool | None = None
    temporary: bool | None = None
    channels: list[Channel] | None = None

    def __post_init__(self) -> None:
        self.created = epoch_ms(self.created)
        self.lastChanged = epoch_ms(self.lastChanged)

    def __repr__(self) -> str:
        # Properties hold personal data (e-mail, names): never in a repr.
        return f"Contact(externalId={self.externalId!r}, lastChanged={self.lastChanged!r})"

    def permissions(self) -> dict[int, bool]:
        """The permission bits present on this contact, bit → enabled (real booleans only)."""
        raw = self.properties.get(PERMISSIONS)
        if not isinstance(raw, list):
            return {}
        bits: dict[int, bool] = {}
        for item in raw:
            if isinstance(item, Permission):
                bits[item.bit] = item.enabled
            elif isinstance(item, Mapping):
                bit, enabled = item.get("bit"), item.get("enabled")
                # "false" would be truthy: a bit whose value is not a real boolean is left out.
                if _is_bit(bit) and isinstance(enabled, bool):
                    bits[bit] = enabled
        return bits

    def set_permissions(self, bits: Mapping[int, bool]) -> None:
        """Merge ``bits`` into the permissions, bit by bit; other bits stay as they are."""
        merged = self.permissions()
        merged.update(bits)
        self.properties = {
            **self.properties,
            PERMISSIONS: [Permission(bit, enabled) for bit, enabled in sorted(merged.items())],
        }

    @property
    def email_reachable(self) -> bool | None:
        """The EMAIL channel's value, or None when the channels were not sent."""
        for channel in self.channels or ():
            if channel.name.upper() == "EMAIL":
                return channel.value
        return None

    def for_write(self) -> Contact:
        """A copy without the read-only fields, as sent in a request."""
        return Contact(self.externalId, dict(self.properties), testGroup=self.testGroup)


class ContactRequest(msgspec.Struct, kw_only=True):
    """Body of ``POST contact`` and ``PUT contact/{externalId}``."""

    update: bool = True
    purge: bool = False
    contact: Contact


class AddContactsRequest(msgspec.Struct, kw_only=True):
    """Body of ``POST contact/list`` (at most 100 contacts)."""

    update: bool = True
    purge: bool = False
    contacts: list[Contact]


class AddContactResult(msgspec.Struct, frozen=True):
    """Per-contact outcome of ``POST contact/list`` (``code`` is ``OK`` on success)."""

    externalId: str
    code: str
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.code == "OK"


class Paging(msgspec.Struct, frozen=True):
    """Where the next page starts."""

    next: str | None = None
    after: int | None = None


class ContactsPage(msgspec.Struct):
    """``{paging, contacts}``: one page of the updates feed or of a search."""

    paging: Paging | None = None
    contacts: list[Contact] = []


class Bounce(msgspec.Struct):
    """One bounce: when (epoch ms), HARDBOUNCE or SOFTBOUNCE, and whose."""

    date: int
    type: str
    contact: Contact
    encryptedActId: str | None = None

    def __post_init__(self) -> None:
        self.date = epoch_ms(self.date) or 0

    @property
    def hard(self) -> bool:
        return self.type.upper() == "HARDBOUNCE"


class BouncesPage(msgspec.Struct):
    """``{paging, bounces}``: one page of the bounces feed."""

    paging: Paging | None = None
    bounces: list[Bounce] = []


class FeedProblem(msgspec.Struct, frozen=True):
    """A feed item that could not be read, yielded in its place; never holds the bad value."""

    feed: str  # "updates" | "bounces"
    external_id: str | None  # when the raw item still shows it
    field: str  # e.g. "externalId", "lastChanged", "permissions.1", "contact.externalId"
    reason: str


class PropertyEntry(msgspec.Struct, frozen=True):
    """One option of a ``set`` property (a permission bit, a list option)."""

    bit: int
    description: str = ""
    rank: int | None = None


class Property(msgspec.Struct, frozen=True):
    """One field of the account's contact catalogue (``contact/properties/list``)."""

    name: str
    description: str = ""
    type: str = "string"
    entries: list[PropertyEntry] | None = None


class ErrorBody(msgspec.Struct, frozen=True):
    """Spotler's error answer: ``{errorType, message}``."""

    errorType: str = ""
    message: str = ""
