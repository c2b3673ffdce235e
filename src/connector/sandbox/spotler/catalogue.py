"""The account's property catalogue: what a contact may hold, and how values are checked.

Values are validated per property type the way the reference describes
(e-mail syntax, ``M``/``F`` gender, ``YYYY-MM-DD`` dates, ISO date-times, Dutch
postcodes, ``set`` values as ``[{bit, enabled}]`` with bits from ``entries``).
Within a request, ``null`` means "not sent" and ``""`` clears a scalar.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import msgspec

from connector.sandbox.spotler.wire import ApiError, Permission, Property, SetEntry

__all__ = [
    "CLEAR",
    "DEFAULT_CATALOGUE",
    "Catalogue",
    "PropertyInvalid",
    "SetWrite",
    "StoredValue",
    "default_catalogue",
]

DEFAULT_CATALOGUE: tuple[Property, ...] = (
    Property("email", "E-mail", "email"),
    Property("firstName", "Voornaam", "string"),
    Property("infix", "Tussenvoegsel", "string"),
    Property("lastName", "Achternaam", "string"),
    Property("organisation", "Organisatie", "string"),
    Property("city", "Plaats", "string"),
    Property("sector", "Branche", "string"),
    Property("customerType", "Klanttype", "string"),
    Property(
        "permissions", "Permissies", "set",
        [SetEntry(1, "Nieuwsbrief", 1), SetEntry(2, "Productnieuws", 2)],
    ),
)

_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}"
)
_POSTCODE = re.compile(r"[1-9][0-9]{3}\s?[A-Za-z]{2}")
_MOBILE = re.compile(r"\+?[0-9][0-9 ()-]{7,19}")
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class PropertyInvalid(ApiError):
    """A value the catalogue refuses; 400 INVALID_PROPERTY (bulk code PROPERTY_INVALID)."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(400, "INVALID_PROPERTY", message)
        self.name = name


class SetWrite(msgspec.Struct, frozen=True):
    """A write to a ``set`` property: which bits were mentioned, which of them are on."""

    mentioned: frozenset[int]
    on: frozenset[int]


class _Clear:
    """Marker: the request cleared this property with an empty string."""

    __slots__ = ()


CLEAR = _Clear()

# Stored per contact: scalars as normalised, sets as the frozenset of enabled bits.
StoredValue = str | int | float | frozenset[int]
WriteValue = str | int | float | SetWrite | _Clear


def default_catalogue() -> list[Property]:
    return list(DEFAULT_CATALOGUE)


class Catalogue:
    """An immutable catalogue; the sandbox swaps in a new one when it is replaced."""

    def __init__(self, properties: Iterable[Property]) -> None:
        self.properties: tuple[Property, ...] = tuple(properties)
        self._by_name: dict[str, Property] = {p.name: p for p in self.properties}
        self._entries: dict[str, dict[int, SetEntry]] = {
            p.name: {e.bit: e for e in p.entries or ()} for p in self.properties if p.type == "set"
        }

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def type_of(self, name: str) -> str | None:
        prop = self._by_name.get(name)
        return prop.type if prop else None

    def parse(self, properties: Mapping[str, Any]) -> dict[str, WriteValue]:
        """Validate a request's ``properties``; raises PropertyInvalid on the first bad one."""
        parsed: dict[str, WriteValue] = {}
        for name, value in properties.items():
            if value is None:
                continue
            prop = self._by_name.get(name)
            if prop is None:
                raise PropertyInvalid("Property is invalid", name)
            parsed[name] = self._parse_value(prop, value)
        return parsed

    def render(self, values: Mapping[str, StoredValue]) -> dict[str, Any]:
        """The ``properties`` of a Contact: catalogue properties with data, sets in full."""
        out: dict[str, Any] = {}
        for prop in self.properties:
            if prop.type == "set":
                bits = values.get(prop.name, frozenset())
                enabled = bits if isinstance(bits, frozenset) else frozenset()
                out[prop.name] = [
                    Permission(e.bit, e.bit in enabled, e.description)
                    for e in sorted(prop.entries or (), key=lambda e: (e.rank, e.bit))
                ]
            elif prop.name in values:
                out[prop.name] = values[prop.name]
        return out

    def check_bit(self, name: str, bit: int) -> None:
        if bit not in self._entries.get(name, {}):
            raise PropertyInvalid("Property is invalid", name)

    def personal(self) -> Sequence[str]:
        """Names that anonymisation clears: everything but the ``set`` properties."""
        return [p.name for p in self.properties if p.type != "set"]

    def _parse_value(self, prop: Property, value: Any) -> WriteValue:
        if prop.type == "set":
            return self._parse_set(prop.name, value)
        if value == "":
            return CLEAR
        checked = _check_scalar(prop.type, value)
        if checked is None:
            message = "Email is invalid" if prop.type == "email" else "Property is invalid"
            raise PropertyInvalid(message, prop.name)
        return checked

    def _parse_set(self, name: str, value: Any) -> SetWrite:
        entries = self._entries[name]
        if not isinstance(value, list):
            raise PropertyInvalid("Property is invalid", name)
        mentioned: set[int] = set()
        on: set[int] = set()
        for item in value:
            bit = _as_int(item.get("bit")) if isinstance(item, dict) else None
            enabled = item.get("enabled") if isinstance(item, dict) else None
            if bit is None or bit not in entries or not isinstance(enabled, bool):
                raise PropertyInvalid("Property is invalid", name)
            mentioned.add(bit)
            if enabled:
                on.add(bit)
            else:
                on.discard(bit)
        return SetWrite(frozenset(mentioned), frozenset(on))


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return None


def _check_scalar(kind: str, value: Any) -> str | int | float | None:
    """The normalised value, or None when ``value`` is not valid for ``kind``."""
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value) if isinstance(value, int | float) else None
    if kind == "int":
        return _as_int(value)
    if kind == "money":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _NUMBER.fullmatch(value):
            return float(value) if "." in value else int(value)
        return None
    if not isinstance(value, str):
        return None
    if kind == "email":
        return value if _EMAIL.fullmatch(value) else None
    if kind == "gender":
        return value.upper() if value.upper() in ("M", "F") else None
    if kind == "postcode":
        return value if _POSTCODE.fullmatch(value) else None
    if kind == "mobNr":
        return value if _MOBILE.fullmatch(value) else None
    if kind in ("date", "birthdate"):
        try:
            date.fromisoformat(value)
        except ValueError:
            return None
        return value if len(value) == 10 else None
    if kind == "dateTime":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return None
        return value
    return None
