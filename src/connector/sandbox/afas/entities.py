"""Writing one element of an UpdateConnector body into the store: match, insert or update."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from connector.sandbox.afas.catalogue import Catalogue
from connector.sandbox.afas.errors import AfasError
from connector.sandbox.afas.journal import Journal
from connector.sandbox.afas.model import Contact, Entity, Organisation, Person, Store, SubObject

if TYPE_CHECKING:
    from connector.sandbox.afas.updates import Node

__all__ = ["ADDRESS_CODES", "CONTROL_FIELDS", "Writer", "apply_fields"]

# Fields that identify or steer, not data: an element with only these is a reference.
CONTROL_FIELDS = frozenset(
    {
        "MatchOga",
        "MatchPer",
        "AutoNum",
        "BcCo",
        "BcId",
        "BcCoOga",
        "BcCoPer",
        "CdId",
        "PadAdr",
    }
)
ADDRESS_CODES = ("KnBasicAddressAdr", "KnBasicAddressPad")
_PERSON_MATCH: dict[str, tuple[str, ...]] = {
    "1": ("SoSe",),
    "2": ("LaNm", "Is", "In", "ViGe"),
    "3": ("LaNm", "Is", "In", "ViGe", "EmAd"),
    "4": ("LaNm", "Is", "In", "ViGe", "MbNr"),
    "5": ("LaNm", "Is", "In", "ViGe", "TeNr"),
    "6": ("LaNm", "Is", "In", "ViGe", "DaBi"),
}
_ORG_MATCH: dict[str, tuple[str, ...]] = {"1": ("CcNr",), "2": ("FiNr",), "3": ("Nm",)}


E = TypeVar("E", Organisation, Person)


def apply_fields(entity: Entity, values: dict[str, Any]) -> None:
    """Set coerced values on an entity; None clears a field."""
    for code, value in values.items():
        if value is None:
            entity.fields.pop(code, None)
        else:
            entity.fields[code] = value


def _norm(value: Any) -> Any:
    return value.casefold().strip() if isinstance(value, str) else value


def _find(
    table: dict[str, E],
    values: dict[str, Any],
    match: str | None,
    rules: dict[str, tuple[str, ...]],
    always_new: str,
) -> E | None:
    """The one record a match code finds, None for none; several are an error."""
    if match == always_new:
        return None
    if match in (None, "0"):
        number = values.get("BcCo")
        return None if number is None else table.get(str(number))
    keys = rules[match]
    wanted = tuple(_norm(values.get(k)) for k in keys)
    hits = [e for e in table.values() if tuple(_norm(e.fields.get(k)) for k in keys) == wanted]
    if len(hits) > 1:
        raise AfasError("More than one existing record matches; the match is ambiguous.")
    return hits[0] if hits else None


class Writer:
    """Applies elements within one journal (one transaction)."""

    def __init__(self, store: Store, catalogue: Catalogue, journal: Journal, now: datetime) -> None:
        self.store = store
        self.catalogue = catalogue
        self.journal = journal
        self.now = now

    def coerce(self, obj: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {code: self.catalogue.coerce(obj, code, raw) for code, raw in fields.items()}

    def _apply(self, entity: Entity, values: dict[str, Any]) -> None:
        """Set the data fields; only identifying fields means a mere reference."""
        data = {k: v for k, v in values.items() if k not in CONTROL_FIELDS}
        if data:
            self.journal.wrote(entity)
            apply_fields(entity, data)

    def _sub_objects(self, entity: Entity, obj: str, node: Node) -> None:
        for name, child in node.objects:
            if name not in self.catalogue.objects[obj].objects:
                raise AfasError(f"Object '{name}' is not a sub-object of '{obj}'.")
            if name in ADDRESS_CODES:
                values = self.coerce(name, child.fields)
                self.journal.wrote(entity)
                attr = "address" if name == "KnBasicAddressAdr" else "postal"
                current = getattr(entity, attr)
                if current is None and values.get("CoId") is None:
                    raise AfasError(f"The field 'CoId' (Country) of object '{name}' is mandatory.")
                merged = dict(current or {})
                merged.update(values)
                setattr(entity, attr, {k: v for k, v in merged.items() if v is not None})
            elif name == "KnContact":
                if isinstance(entity, Organisation):
                    self.nested_contact(child, org=entity, owner=None)
                elif isinstance(entity, Person):
                    self.nested_contact(child, org=None, owner=entity)
            elif name != "KnPerson":  # a contact's person is handled with the contact
                self.coerce(name, child.fields)
                self.journal.wrote(entity)
                entity.extra.append(SubObject(name, dict(child.fields)))

    def _number(self, values: dict[str, Any], what: str) -> str:
        if values.get("AutoNum"):
            return self.store.new_number()
        number = values.get("BcCo")
        if number is None:
            raise AfasError(f"The field 'BcCo' (Number) of the new {what} is mandatory.")
        if self.store.exists(str(number)):
            raise AfasError(f"An organisation or person with number '{number}' already exists.")
        return str(number)

    def _mandatory(self, obj: str, values: dict[str, Any]) -> None:
        for spec in self.catalogue.objects[obj].fields:
            if spec.mandatory and values.get(spec.fieldId) is None:
                raise AfasError(f"The field '{spec.fieldId}' ({spec.label}) is mandatory.")

    def organisation(self, node: Node) -> Organisation:
        values = self.coerce("KnOrganisation", node.fields)
        match = values.get("MatchOga")
        found = self._find_org(values, match, node)
        if found is None:
            if node.action == "update" and match in (None, "0"):
                raise self._missing(values, "organisation")
            self._mandatory("KnOrganisation", values)
            now = self.now
            found = Organisation(
                bc_id=self.store.new_bc_id(),
                bc_co=self._number(values, "organisation"),
                fields={},
                created=now,
                modified=now,
            )
            self.store.add_organisation(found)
            self.journal.created(found)
        elif node.action == "insert" and match is None:
            raise AfasError(f"An organisation with number '{found.bc_co}' already exists.")
        self._apply(found, values)
        self._sub_objects(found, "KnOrganisation", node)
        return found

    def person(self, node: Node) -> Person:
        values = self.coerce("KnPerson", node.fields)
        match = values.get("MatchPer")
        found = _find(self.store.persons, values, match, _PERSON_MATCH, "7")
        if found is None:
            if node.action == "update" and match in (None, "0"):
                raise self._missing(values, "person")
            self._mandatory("KnPerson", values)
            now = self.now
            found = Person(
                bc_id=self.store.new_bc_id(),
                bc_co=self._number(values, "person"),
                fields={},
                created=now,
                modified=now,
            )
            self.store.add_person(found)
            self.journal.created(found)
        elif node.action == "insert" and match is None:
            raise AfasError(f"A person with number '{found.bc_co}' already exists.")
        self._apply(found, values)
        self._sub_objects(found, "KnPerson", node)
        return found

    def _missing(self, values: dict[str, Any], what: str) -> AfasError:
        if values.get("BcCo") is None:
            return AfasError(f"The field 'BcCo' (Number) is mandatory to find the {what}.")
        return AfasError(f"The entered value for '{what}' ({values['BcCo']}) does not exist.")

    def _find_org(self, values: dict[str, Any], match: str | None, node: Node) -> Organisation | None:
        if match in ("4", "5"):
            return self._find_by_address(match, node)
        return _find(self.store.organisations, values, match, _ORG_MATCH, "6")

    def _find_by_address(self, match: str, node: Node) -> Organisation | None:
        name = "KnBasicAddressAdr" if match == "4" else "KnBasicAddressPad"
        sent = next((self.coerce(name, c.fields) for n, c in node.objects if n == name), None)
        if sent is None:
            raise AfasError(f"Matching on address needs object '{name}'.")
        key = (_norm(sent.get("ZpCd")), sent.get("HmNr"))
        attr = "address" if match == "4" else "postal"
        hits = [
            o
            for o in self.store.organisations.values()
            if (a := getattr(o, attr)) is not None and (_norm(a.get("ZpCd")), a.get("HmNr")) == key
        ]
        if len(hits) > 1:
            raise AfasError("More than one existing record matches; the match is ambiguous.")
        return hits[0] if hits else None

    def nested_contact(self, node: Node, *, org: Organisation | None, owner: Person | None) -> Contact:
        values = self.coerce("KnContact", node.fields)
        person_nodes = [c for n, c in node.objects if n == "KnPerson"]
        if len(person_nodes) > 1:
            raise AfasError("A contact holds at most one person.")
        person = self.person(person_nodes[0]) if person_nodes else None
        kind = values.get("ViKc") or ("PRS" if person is not None else "AFD")
        if (kind == "PRS") != (person is not None):
            verb = "needs" if kind == "PRS" else "cannot hold"
            raise AfasError(f"A contact of type '{kind}' {verb} a person.")
        holder = org.bc_co if org is not None else None
        if node.action == "insert":
            if person is not None and any(
                self.store.contacts[i].org == holder
                and self.store.contacts[i].kind == "PRS"
                and (owner is None or self.store.contacts[i].owner_person == owner.bc_co)
                for i in self.store.by_person.get(person.bc_co, [])
            ):
                raise AfasError("This person is already a contact here.")
            now = self.now
            contact = Contact(
                cd_id=self.store.new_cd_id(),
                kind=kind,
                org=holder,
                person=person.bc_co if person is not None else None,
                owner_person=owner.bc_co if owner is not None else None,
                fields={"ViKc": kind},
                created=now,
                modified=now,
            )
            self.store.add_contact(contact)
            self.journal.created(contact)
        else:
            contact = self._existing_contact(values, holder, person, kind)
        self._apply(contact, values)
        self._sub_objects(contact, "KnContact", node)
        return contact

    def _existing_contact(self, values: dict[str, Any], org: str | None, person: Person | None, kind: str) -> Contact:
        contacts = self.store.contacts
        if values.get("CdId") is not None:
            found = contacts.get(int(values["CdId"]))
        elif person is not None:
            found = next(
                (
                    contacts[i]
                    for i in self.store.by_person.get(person.bc_co, [])
                    if contacts[i].org == org and contacts[i].kind == kind
                ),
                None,
            )
        else:
            found = self._department(org, values.get("ExAd"), kind)
        if found is None:
            raise AfasError("The entered value for 'Contact' does not exist.")
        return found

    def _department(self, org: str | None, department: Any, kind: str | None) -> Contact | None:
        contacts = self.store.contacts
        hits = [
            contacts[i]
            for i in self.store.by_org.get(org or "", [])
            if contacts[i].kind != "PRS"
            and (kind is None or contacts[i].kind == kind)
            and (department is None or _norm(contacts[i].fields.get("ExAd")) == _norm(department))
        ]
        return hits[0] if len(hits) == 1 else None

    def standalone_contact(self, node: Node) -> Contact:
        """``PUT KnContact``: find the contact, change it."""
        values = self.coerce("KnContact", node.fields)
        contacts, store = self.store.contacts, self.store
        for key, table in (("BcCoOga", store.organisations), ("BcCoPer", store.persons)):
            if values.get(key) is not None and values[key] not in table:
                what = "organisation" if key == "BcCoOga" else "person"
                raise AfasError(f"The entered value for '{what}' ({values[key]}) does not exist.")
        oga, per, kind = values.get("BcCoOga"), values.get("BcCoPer"), values.get("ViKc")
        found: Contact | None
        if values.get("CdId") is not None:
            found = contacts.get(int(values["CdId"]))
            if found is not None and kind is not None and kind != found.kind:
                raise AfasError("The contact type (ViKc) does not match the contact.")
        elif oga is not None and per is not None:
            found = next(
                (
                    contacts[i]
                    for i in store.by_person.get(per, [])
                    if contacts[i].org == oga and contacts[i].kind == "PRS"
                ),
                None,
            )
        elif oga is not None:
            found = self._department(oga, values.get("ExAd"), kind)
        elif per is not None:
            found = next((contacts[i] for i in store.by_person.get(per, []) if contacts[i].org is None), None)
        else:
            raise AfasError("The field 'CdId' (Contact) is mandatory.")
        if found is None:
            raise AfasError("The entered value for 'Contact' does not exist.")
        self._apply(found, {k: v for k, v in values.items() if k != "ViKc"})
        for name, child in node.objects:
            if name == "KnPerson" and found.person is not None:
                self._apply(self.store.persons[found.person], self.coerce("KnPerson", child.fields))
        self._sub_objects(found, "KnContact", node)
        return found
