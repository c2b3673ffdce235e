"""GetConnector definitions as data: columns, their types and where each value comes from.

A column's ``source`` is ``<entity>.<field>``: the entity is ``contact``,
``person``, ``organisation`` or ``address`` (the organisation's visit
address) and the field an UpdateConnector field code (``FiNm``, ``EmAd``, a
free field ``U…``) or a derived value (``@modified``, ``@created``,
``@fullname``, ``@name``, ``@line1``/``@line3``/``@line4``). A row is derived
per contact, so a change to a person or organisation shows in every row that
holds it. Definitions can be replaced through the control API.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import msgspec

from connector.sandbox.afas.catalogue import (
    CUSTOMER_TYPE,
    NEWSLETTER,
    PRODUCT_NEWS,
    Catalogue,
    DataType,
)
from connector.sandbox.afas.model import Contact, Store

__all__ = [
    "Column",
    "ConnectorDef",
    "ResolvedColumn",
    "default_definitions",
    "resolve_columns",
    "rows_builder",
]

_ENTITIES = {
    "contact": "KnContact",
    "person": "KnPerson",
    "organisation": "KnOrganisation",
    "address": "KnBasicAddressAdr",
}
_VIRTUAL: dict[str, tuple[DataType, str]] = {
    "@modified": ("date", "Gewijzigd op"),
    "@created": ("date", "Aangemaakt op"),
    "@fullname": ("string", "Volledige naam"),
    "@name": ("string", "Naam"),
    "@line1": ("string", "Adresregel 1"),
    "@line3": ("string", "Adresregel 3"),
    "@line4": ("string", "Adresregel 4"),
}
_KEYS: dict[str, tuple[DataType, int]] = {
    "CdId": ("int", 0),
    "ViKc": ("string", 20),
    "BcCo": ("string", 15),
}
_MISSING: Any = object()


class Column(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One column as an administrator defines it."""

    id: str
    source: str
    dataType: DataType | None = None
    label: str | None = None
    length: int | None = None


class ConnectorDef(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A GetConnector: its columns and which contact types it lists."""

    description: str = ""
    columns: list[Column]
    contact_types: list[str] = msgspec.field(default_factory=lambda: ["PRS", "AFD", "PER"])


class ResolvedColumn(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    entity: str
    code: str
    dataType: DataType
    label: str
    length: int
    source_type: DataType


def resolve_columns(defn: ConnectorDef, catalogue: Catalogue) -> list[ResolvedColumn]:
    """Check a definition and fill in types and labels; ValueError names what is wrong."""
    out: list[ResolvedColumn] = []
    seen: set[str] = set()
    for col in defn.columns:
        if not col.id or col.id in seen:
            raise ValueError(f"column id {col.id!r} is empty or used twice")
        seen.add(col.id)
        entity, _, code = col.source.partition(".")
        if entity not in _ENTITIES or not code:
            raise ValueError(f"column {col.id!r}: source must be <{'|'.join(_ENTITIES)}>.<field>")
        if code in _VIRTUAL:
            data_type, label, length = *_VIRTUAL[code], 0
        elif code in _KEYS and (entity, code) != ("address", "BcCo"):
            (data_type, length), label = _KEYS[code], code
        else:
            spec = catalogue.fields(_ENTITIES[entity]).get(code)
            if spec is None:
                raise ValueError(f"column {col.id!r}: {_ENTITIES[entity]} has no field {code!r}")
            data_type, label, length = spec.dataType, spec.label, spec.length
        out.append(
            ResolvedColumn(
                id=col.id,
                entity=entity,
                code=code,
                dataType=col.dataType or data_type,
                label=col.label or label,
                length=col.length if col.length is not None else length,
                source_type=data_type,
            )
        )
    return out


# (contacts, their persons, their organisations, the organisations' visit addresses)
Batch = tuple[list[Contact], list[Any], list[Any], list[Any]]


def _raw(col: ResolvedColumn, batch: Batch) -> list[Any]:
    """One column's source values for a batch of contacts; _MISSING where the entity is absent."""
    contacts, persons, orgs, addresses = batch
    code = col.code
    if col.entity == "contact" and code == "CdId":
        return [c.cd_id for c in contacts]
    if col.entity == "contact" and code == "ViKc":
        return [c.kind for c in contacts]
    if col.entity == "contact" and code == "@name":
        return [
            _fullname(p.fields) if p else o.fields.get("Nm") if o else None for p, o in zip(persons, orgs, strict=True)
        ]
    if col.entity == "address":
        line = _LINES.get(code)
        if line is not None:
            return [_MISSING if a is None else line(a) for a in addresses]
        return [_MISSING if a is None else a.get(code) for a in addresses]
    if code == "@fullname":
        return [_MISSING if p is None else _fullname(p.fields) for p in persons]
    ents = {"contact": contacts, "person": persons, "organisation": orgs}[col.entity]
    if code in ("@modified", "@created"):
        attr = code[1:]
        return [_MISSING if e is None else getattr(e, attr) for e in ents]
    if code == "BcCo":
        return [_MISSING if e is None else e.bc_co for e in ents]
    return [_MISSING if e is None else e.fields.get(code) for e in ents]


def _fullname(fields: dict[str, Any]) -> str:
    parts = (fields.get("CaNm") or fields.get("FiNm"), fields.get("Is"), fields.get("LaNm"))
    return " ".join(p for p in parts if p)


def _line1(a: dict[str, Any]) -> str | None:
    street = " ".join(str(a[k]) for k in ("Ad", "HmNr") if a.get(k) is not None)
    return (street + str(a.get("HmAd") or "")) or None


def _line3(a: dict[str, Any]) -> str | None:
    return "  ".join(str(a[k]) for k in ("ZpCd", "Rs") if a.get(k)) or None


def _line4(a: dict[str, Any]) -> str | None:
    return {"NL": "Nederland", "BE": "België", "DE": "Duitsland"}.get(a.get("CoId") or "", a.get("CoId"))


_LINES: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "@line1": _line1,
    "@line3": _line3,
    "@line4": _line4,
}


def _typed(data_type: DataType) -> Callable[[Any], Any]:
    def boolean(v: Any) -> Any:
        return None if v is _MISSING else bool(v)

    def string(v: Any) -> Any:
        if v is _MISSING or v is None:
            return None
        if isinstance(v, bool):
            return "Ja" if v else "Nee"
        return v.isoformat() if isinstance(v, date) else str(v)

    def integer(v: Any) -> Any:
        if v is _MISSING or v is None or isinstance(v, bool):
            return None
        try:
            return int(v)
        except (TypeError, ValueError):
            return None

    def decimal(v: Any) -> Any:
        value = integer(v) if not isinstance(v, float) else v
        return None if value is None else float(value)

    def when(v: Any) -> Any:
        if isinstance(v, datetime):
            return v
        return datetime(v.year, v.month, v.day) if isinstance(v, date) else None

    return {"boolean": boolean, "string": string, "int": integer, "decimal": decimal, "date": when}[data_type]


def _values(col: ResolvedColumn, batch: Batch) -> list[Any]:
    raw = _raw(col, batch)
    same = col.dataType == col.source_type
    if same and (col.dataType in ("string", "int") or col.code in ("@modified", "@created")):
        return [None if v is _MISSING else v for v in raw]
    typed = _typed(col.dataType)
    return [typed(v) for v in raw]


def rows_builder(store: Store, columns: list[ResolvedColumn]) -> Callable[[list[Contact]], list[tuple[Any, ...]]]:
    """The function that turns contacts into rows (typed values in column order)."""
    orgs, persons = store.organisations, store.persons

    def build(contacts: list[Contact]) -> list[tuple[Any, ...]]:
        their_orgs = [orgs.get(c.org) if c.org is not None else None for c in contacts]
        batch: Batch = (
            contacts,
            [persons.get(c.person) if c.person is not None else None for c in contacts],
            their_orgs,
            [o.address if o is not None else None for o in their_orgs],
        )
        return list(zip(*(_values(col, batch) for col in columns), strict=True))

    return build


def _spotler_contacts() -> ConnectorDef:
    cols = [
        ("ContactId", "contact.CdId", "Contact-id"),
        ("PersonNo", "person.BcCo", "Persoonsnummer"),
        ("OrganisationId", "organisation.BcCo", "Organisatienummer"),
        ("OrganisationName", "organisation.Nm", "Organisatie"),
        ("Initials", "person.In", "Voorletters"),
        ("FirstName", "person.FiNm", "Voornaam"),
        ("Prefix", "person.Is", "Voorvoegsel"),
        ("LastName", "person.LaNm", "Achternaam"),
        ("Gender", "person.ViGe", "Geslacht"),
        ("Email", "contact.EmAd", "E-mail werk"),
        ("Phone", "contact.TeNr", "Telefoonnr. werk"),
        ("Street", "address.Ad", "Straat"),
        ("HouseNumber", "address.HmNr", "Huisnummer"),
        ("PostalCode", "address.ZpCd", "Postcode"),
        ("City", "address.Rs", "Woonplaats"),
        ("Sector", "organisation.ViLb", "Branche"),
        ("CustomerType", f"organisation.{CUSTOMER_TYPE}", "Klanttype"),
        ("Newsletter", f"contact.{NEWSLETTER}", "Nieuwsbrief"),
        ("ProductNews", f"contact.{PRODUCT_NEWS}", "Productnieuws"),
        ("Blocked", "contact.Bl", "Geblokkeerd"),
        ("ContactModified", "contact.@modified", "Contact gewijzigd op"),
        ("PersonModified", "person.@modified", "Persoon gewijzigd op"),
        ("OrganisationModified", "organisation.@modified", "Organisatie gewijzigd op"),
    ]
    return ConnectorDef(
        description="Contacten voor Spotler",
        columns=[Column(id=i, source=s, label=label) for i, s, label in cols],
    )


def _profit_contacts() -> ConnectorDef:
    cols = [
        ("Type", "contact.ViKc"),
        ("ContactId", "contact.CdId"),
        ("Name", "contact.@name"),
        ("OrgNumber", "organisation.BcCo"),
        ("PerNumber", "person.BcCo"),
        ("Department", "contact.ExAd"),
        ("Blocked", "contact.Bl"),
        ("AddressLine1", "address.@line1"),
        ("AddressLine3", "address.@line3"),
        ("AddressLine4", "address.@line4"),
        ("TelWork", "contact.TeNr"),
        ("MobWork", "contact.MbNr"),
        ("MailWork", "contact.EmAd"),
        ("Note", "contact.Re"),
        ("Function", "contact.ViFu"),
        ("FunctionCard", "contact.FuDs"),
        ("FullName", "person.@fullname"),
        ("Gender", "person.ViGe"),
        ("TelPrivate", "person.TeN2"),
        ("MobPrivate", "person.MbN2"),
        ("MailPrivate", "person.EmA2"),
        ("CreateDate", "contact.@created"),
        ("ModifiedDate", "contact.@modified"),
    ]
    return ConnectorDef(
        description="Contacten (Profit)",
        columns=[Column(id=i, source=s) for i, s in cols],
        contact_types=["PRS", "AFD", "PER", "AFL", "ORG"],
    )


def default_definitions() -> dict[str, ConnectorDef]:
    return {"Spotler_Contacts": _spotler_contacts(), "Profit_Contacts": _profit_contacts()}
