"""The UpdateConnector field catalogue: standard fields from the vendor spec plus free fields.

``catalogue.json`` holds the standard fields of KnOrganisation, KnPerson,
KnContact and their sub-objects as the vendor OpenAPI file describes them
(type, length, code-table values). The environment's free fields (``U`` + 32
hex) are added here. Every write, through the API or the control API, is
coerced and validated against this catalogue.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from importlib import resources
from typing import Any, Literal

import msgspec

from connector.sandbox.afas.clock import parse_local
from connector.sandbox.afas.errors import AfasError

__all__ = [
    "CUSTOMER_TYPE",
    "EMAIL_BOUNCED",
    "NEWSLETTER",
    "PRODUCT_NEWS",
    "Catalogue",
    "CodeValue",
    "FieldDef",
    "ObjectDef",
]

DataType = Literal["string", "int", "decimal", "boolean", "date"]

NEWSLETTER = "U74BB4FF508DD36A73F8DF61FDBBB8754"
PRODUCT_NEWS = "U91C07B23753D2AA3F9BCF2F639094D04"
EMAIL_BOUNCED = "U3E3988960B40ED53A073B30748E1CD6D"
CUSTOMER_TYPE = "UCC690F77030D0AD3D3D411F648A10379"

_EMAIL_FIELDS = frozenset({"EmAd", "EmA2", "EmailPortal"})
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_INT_RE = re.compile(r"^\s*[-+]?\d+\s*$")
_TRUE = frozenset({"true", "1", "-1"})
_FALSE = frozenset({"false", "0"})


class CodeValue(msgspec.Struct, frozen=True):
    """One entry of a code table."""

    id: str
    description: str


class FieldDef(msgspec.Struct, frozen=True, kw_only=True):
    """One UpdateConnector field."""

    fieldId: str
    dataType: DataType
    label: str
    length: int = 0
    mandatory: bool = False
    primaryKey: bool = False
    values: list[CodeValue] | None = None

    @property
    def control_type(self) -> int:
        if self.values:
            return 2
        return {"string": 1, "boolean": 3, "date": 4, "int": 5, "decimal": 6}[self.dataType]


class ObjectDef(msgspec.Struct, frozen=True, kw_only=True):
    """An UpdateConnector object: its fields and the sub-objects it may hold."""

    description: str
    objects: list[str]
    fields: list[FieldDef]


class _CatalogueFile(msgspec.Struct):
    source: str
    objects: dict[str, ObjectDef]


_FREE_FIELDS: dict[str, list[FieldDef]] = {
    "KnContact": [
        FieldDef(fieldId=NEWSLETTER, dataType="boolean", label="Nieuwsbrief"),
        FieldDef(fieldId=PRODUCT_NEWS, dataType="boolean", label="Productnieuws"),
        FieldDef(fieldId=EMAIL_BOUNCED, dataType="boolean", label="E-mail gebounced"),
    ],
    "KnOrganisation": [
        FieldDef(fieldId=CUSTOMER_TYPE, dataType="string", label="Klanttype", length=40),
    ],
}


class Catalogue:
    """Field definitions per object, and coercion of incoming values."""

    def __init__(self, objects: dict[str, ObjectDef]) -> None:
        self.objects = objects
        self._fields = {name: {f.fieldId: f for f in o.fields} for name, o in objects.items()}

    @classmethod
    def load(cls) -> Catalogue:
        raw = resources.files("connector.sandbox.afas").joinpath("catalogue.json").read_bytes()
        objects = msgspec.json.decode(raw, type=_CatalogueFile).objects
        for name, extra in _FREE_FIELDS.items():
            base = objects[name]
            objects[name] = ObjectDef(description=base.description, objects=base.objects, fields=base.fields + extra)
        return cls(objects)

    def fields(self, obj: str) -> dict[str, FieldDef]:
        return self._fields[obj]

    def field(self, obj: str, code: str) -> FieldDef:
        found = self._fields[obj].get(code)
        if found is None:
            raise AfasError(f"The field '{code}' does not exist in object '{obj}'.")
        return found

    def coerce(self, obj: str, code: str, raw: Any) -> Any:
        """A value as stored: typed, or None for a cleared field; AfasError when invalid."""
        spec = self.field(obj, code)
        if raw is None or raw == "":
            return None
        where = f"field '{code}' ({spec.label}) of object '{obj}'"
        value = _coerce(spec.dataType, raw)
        if value is None:
            raise AfasError(f"The value of {where} is not a valid {_TYPE_NAMES[spec.dataType]}.")
        if isinstance(value, str):
            if spec.length and len(value) > spec.length:
                raise AfasError(f"The value of {where} is too long (at most {spec.length} characters).")
            if spec.values is not None and value not in {v.id for v in spec.values}:
                raise AfasError(f"The value of {where} does not occur in its code table.")
            if code in _EMAIL_FIELDS and not _EMAIL_RE.match(value):
                raise AfasError(f"The value of {where} is not a valid e-mail address.")
        return value


_TYPE_NAMES = {
    "string": "text",
    "int": "whole number",
    "decimal": "number",
    "boolean": "yes/no value",
    "date": "date",
}


def _coerce(data_type: DataType, raw: Any) -> Any:
    if data_type == "string":
        if isinstance(raw, bool):
            return "true" if raw else "false"
        return str(raw) if isinstance(raw, str | int | float) else None
    if data_type == "boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower() if isinstance(raw, str | int) else ""
        return True if text in _TRUE else False if text in _FALSE else None
    if data_type == "int":
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float):
            return int(raw) if raw.is_integer() else None
        return int(raw) if isinstance(raw, str) and _INT_RE.match(raw) else None
    if data_type == "decimal":
        if isinstance(raw, bool):
            return None
        try:
            return float(raw) if isinstance(raw, str | int | float) else None
        except ValueError:
            return None
    if isinstance(raw, str):
        parsed = parse_local(raw)
        return _as_date(parsed) if parsed is not None else None
    return None


def _as_date(value: datetime) -> date:
    return value.date()
