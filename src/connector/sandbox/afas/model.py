"""The CRM the sandbox simulates: organisations, persons and the contacts that link them.

Field values are kept by their UpdateConnector field code (``Nm``, ``FiNm``,
``EmAd``, free fields ``U…``), typed by the catalogue, so a write is a dict
update. A contact is a person at an organisation (PRS), a department of an
organisation (AFD, no person), a person's own contact (PER, no organisation)
or a delivery address (AFL). Contacts are never deleted, only blocked (``Bl``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import msgspec

__all__ = ["API_CHANGES_KEPT", "BasicContact", "Contact", "Entity", "Organisation", "Person", "Store", "SubObject"]


class SubObject(msgspec.Struct):
    """A sub-object kept as sent (bank account, authorisation role)."""

    name: str
    fields: dict[str, Any]


class BasicContact(msgspec.Struct, kw_only=True):
    """What AFAS calls an "organisation/person": the shape both share."""

    bc_id: int
    bc_co: str
    fields: dict[str, Any]
    address: dict[str, Any] | None = None
    postal: dict[str, Any] | None = None
    created: datetime
    modified: datetime
    extra: list[SubObject] = msgspec.field(default_factory=list)


class Organisation(BasicContact, kw_only=True):
    pass


class Person(BasicContact, kw_only=True):
    pass


class Contact(msgspec.Struct, kw_only=True):
    cd_id: int
    kind: str
    org: str | None
    person: str | None
    fields: dict[str, Any]
    owner_person: str | None = None
    address: dict[str, Any] | None = None
    postal: dict[str, Any] | None = None
    created: datetime
    modified: datetime
    extra: list[SubObject] = msgspec.field(default_factory=list)


Entity = Organisation | Person | Contact


API_CHANGES_KEPT = 16


class Store:
    """All entities, the indexes between them, and change notification for views."""

    def __init__(self) -> None:
        self.organisations: dict[str, Organisation] = {}
        self.persons: dict[str, Person] = {}
        self.contacts: dict[int, Contact] = {}
        self.by_org: dict[str, list[int]] = {}
        self.by_person: dict[str, list[int]] = {}
        self.version = 0
        self._next_bc_id = 1
        self._next_number = 100000
        self._next_cd_id = 1
        self._listeners: list[Callable[[Iterable[int]], None]] = []
        # Per contact, the wall-clock epoch ms of the latest UpdateConnector calls that wrote its row
        # (newest last, at most API_CHANGES_KEPT): lets a test tell an edit a write overwrote from one it raced.
        self.api_changes: dict[int, list[int]] = {}

    def note_api_change(self, contact_ids: Iterable[int], at_ms: int) -> None:
        for cid in contact_ids:
            self.api_changes[cid] = [*self.api_changes.get(cid, [])[1 - API_CHANGES_KEPT:], at_ms]

    def subscribe(self, listener: Callable[[Iterable[int]], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[Iterable[int]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def touch(self, contact_ids: Iterable[int]) -> None:
        """Tell every view which contacts' rows may have changed."""
        ids = list(contact_ids)
        self.version += 1
        for listener in self._listeners:
            listener(ids)

    def exists(self, bc_co: str) -> bool:
        return bc_co in self.organisations or bc_co in self.persons

    def new_bc_id(self) -> int:
        self._next_bc_id += 1
        return self._next_bc_id - 1

    def new_number(self) -> str:
        """The next free BcCo; organisations and persons share one number series."""
        while self.exists(str(self._next_number)):
            self._next_number += 1
        self._next_number += 1
        return str(self._next_number - 1)

    def new_cd_id(self) -> int:
        while self._next_cd_id in self.contacts:
            self._next_cd_id += 1
        self._next_cd_id += 1
        return self._next_cd_id - 1

    def add_organisation(self, org: Organisation) -> None:
        self.organisations[org.bc_co] = org
        self.by_org.setdefault(org.bc_co, [])

    def add_person(self, person: Person) -> None:
        self.persons[person.bc_co] = person
        self.by_person.setdefault(person.bc_co, [])

    def add_contact(self, contact: Contact) -> None:
        self.contacts[contact.cd_id] = contact
        if contact.org is not None:
            self.by_org.setdefault(contact.org, []).append(contact.cd_id)
        if contact.person is not None:
            self.by_person.setdefault(contact.person, []).append(contact.cd_id)

    def remove(self, entity: Entity) -> None:
        """Undo an insert (a failed transaction); AFAS itself never deletes contacts."""
        if isinstance(entity, Organisation):
            self.organisations.pop(entity.bc_co, None)
            self.by_org.pop(entity.bc_co, None)
        elif isinstance(entity, Person):
            self.persons.pop(entity.bc_co, None)
            self.by_person.pop(entity.bc_co, None)
        else:
            self.contacts.pop(entity.cd_id, None)
            for index, key in ((self.by_org, entity.org), (self.by_person, entity.person)):
                if key is not None and entity.cd_id in index.get(key, []):
                    index[key].remove(entity.cd_id)

    def affected(self, entity: Entity) -> list[int]:
        """The contacts whose GetConnector rows show this entity."""
        if isinstance(entity, Organisation):
            return list(self.by_org.get(entity.bc_co, ()))
        if isinstance(entity, Person):
            return list(self.by_person.get(entity.bc_co, ()))
        return [entity.cd_id]

    def counts(self) -> dict[str, int]:
        return {
            "contacts": len(self.contacts),
            "persons": len(self.persons),
            "organisations": len(self.organisations),
        }
