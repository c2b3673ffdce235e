"""The contact store keyed by externalId, with the change and bounce feeds.

Rules (from the reference): ``purge=false`` merges properties and merges
``set`` properties per bit; ``purge=true`` replaces every property.
``created``/``lastChanged`` are epoch milliseconds from the sandbox clock;
``lastChanged`` moves only on an effective change of an API write, and always
on an injected event (edit, unsubscribe, bounce), which is what a recipient's
action does. It never repeats for one contact, so ``(externalId,
lastChanged)`` identifies a version. Thread-safe: tests read it from their
own thread while the server runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from connector.sandbox.spotler.catalogue import (
    Catalogue,
    PropertyInvalid,
    SetWrite,
    default_catalogue,
)
from connector.sandbox.spotler.clock import SandboxClock
from connector.sandbox.spotler.index import BounceLog, ChangeIndex, page_of, window
from connector.sandbox.spotler.records import (
    ContactRecord,
    ContactView,
    encrypted_id,
    merged,
    render,
    view,
)
from connector.sandbox.spotler.wire import (
    AddContactResponse,
    ApiError,
    Contact,
    ContactBounce,
    ContactIn,
    Property,
)

__all__ = ["API_CHANGES_KEPT", "Store", "not_found"]

API_CHANGES_KEPT = 16


def not_found() -> ApiError:
    return ApiError(404, "CONTACT_NOT_FOUND", "Given contact not found")


def _external_id(contact: ContactIn) -> str | None:
    value = contact.externalId
    if value is None or value == "":
        return None
    return str(value)


class Store:
    """Contacts, their change index and the bounce log, behind one lock."""

    def __init__(self, clock: SandboxClock, catalogue: Iterable[Property] | None = None) -> None:
        self.dedupe_on_email = False
        self.feeds_by_id = False
        self.clock = clock
        self.catalogue = Catalogue(default_catalogue() if catalogue is None else catalogue)
        self._lock = threading.RLock()
        self._contacts: dict[str, ContactRecord] = {}
        self._changes = ChangeIndex()
        self._bounces = BounceLog()
        self._bounce_seq = 0

    def reset(self, catalogue: Iterable[Property] | None = None) -> None:
        with self._lock:
            self._contacts.clear()
            self._changes.clear()
            self._bounces.clear()
            self.catalogue = Catalogue(default_catalogue() if catalogue is None else catalogue)

    def replace_catalogue(self, catalogue: Iterable[Property]) -> None:
        with self._lock:
            self.catalogue = Catalogue(catalogue)

    def __len__(self) -> int:
        return len(self._contacts)

    # --- API writes ---------------------------------------------------------

    def insert(self, contact: ContactIn, *, update: bool, purge: bool) -> None:
        """``POST contact``: create, or update when ``update`` is true."""
        external_id = _external_id(contact)
        if external_id is None:
            raise ApiError(400, "INVALID_PARAMS", "Contact without externalId found")
        with self._lock:
            self._insert(external_id, contact, update=update, purge=purge)

    def insert_many(
        self, contacts: list[ContactIn], *, update: bool, purge: bool
    ) -> list[AddContactResponse]:
        """``POST contact/list``: one result per contact; one bad contact spoils nothing else."""
        ids = [_external_id(c) for c in contacts]
        checked = [i for i in ids if i is not None]
        if len(checked) != len(ids):
            raise ApiError(400, "INVALID_PARAMS", "Contact without externalId found")
        results: list[AddContactResponse] = []
        with self._lock:
            for external_id, contact in zip(checked, contacts, strict=True):
                try:
                    created = self._insert(external_id, contact, update=update, purge=purge)
                except PropertyInvalid as exc:
                    results.append(AddContactResponse(external_id, "PROPERTY_INVALID", exc.message))
                except ApiError as exc:
                    code = exc.error_type if exc.error_type == "CONTACT_ALREADY_EXISTS" else "ERROR"
                    results.append(AddContactResponse(external_id, code, exc.message))
                else:
                    message = "Contact added" if created else "Contact updated"
                    results.append(AddContactResponse(external_id, "OK", message))
        return results

    def update(self, external_id: str, contact: ContactIn, *, purge: bool) -> None:
        """``PUT contact/{externalId}``."""
        body_id = _external_id(contact)
        if body_id is not None and body_id != external_id:
            raise ApiError(400, "INVALID_PARAMS", "Path id doesn't match")
        with self._lock:
            record = self._contacts.get(external_id)
            if record is None:
                raise not_found()
            self._api_write(record, contact, purge=purge)

    def anonymize(self, external_id: str) -> None:
        """Clear every personal (non-``set``) property; the record stays."""
        with self._lock:
            record = self._require(external_id)
            clear: dict[str, Any] = {name: "" for name in self.catalogue.personal()}
            self._write(record, clear, None, purge=False)

    def inactivate(self, external_id: str) -> None:
        with self._lock:
            record = self._require(external_id)
            if record.active:
                record.active = False
                self._touch(record)

    # --- injected events (control API) -------------------------------------

    def edit(self, external_id: str, properties: Mapping[str, Any]) -> None:
        """A profile-change form: merge the properties, always a new version."""
        with self._lock:
            record = self._require(external_id)
            if not self._write(record, properties, None, purge=False):
                self._touch(record)

    def unsubscribe(self, external_id: str, *, bit: int | None, name: str = "permissions") -> None:
        """A recipient unsubscribes: one bit off, or (``bit`` None) a global opt-out."""
        with self._lock:
            record = self._require(external_id)
            if bit is None:
                record.active = False
            else:
                self.catalogue.check_bit(name, bit)
                off = SetWrite(frozenset({bit}), frozenset())
                record.values = merged(record.values, {name: off})
            self._touch(record)

    def bounce(
        self, external_id: str, kind: str, *, act_id: str | None, soft_limit: int | None
    ) -> None:
        """A bounce: a hard one (or too many soft ones) makes the contact inactive."""
        with self._lock:
            record = self._require(external_id)
            if kind == "HARDBOUNCE":
                record.active = False
            else:
                record.soft_bounces += 1
                if soft_limit is not None and record.soft_bounces >= soft_limit:
                    record.active = False
            self._touch(record)
            self._bounce_seq += 1
            self._bounces.add((record.last_changed, external_id, self._bounce_seq, kind, act_id))

    # --- reads ----------------------------------------------------------------

    def get(self, external_id: str) -> Contact | None:
        with self._lock:
            record = self._contacts.get(external_id)
            return None if record is None else self._show(record)

    def view(self, external_id: str) -> ContactView | None:
        with self._lock:
            record = self._contacts.get(external_id)
            return None if record is None else view(record, self.catalogue)

    def views(self) -> list[ContactView]:
        with self._lock:
            return [view(r, self.catalogue) for r in self._contacts.values()]

    def changed(self, lo_ms: int, hi_ms: int, after: int, size: int) -> tuple[list[Contact], int]:
        """Contacts with ``lo_ms <= lastChanged <= hi_ms``, by (lastChanged, externalId) or by id."""
        with self._lock:
            keys = self._changes.ordered(self._is_current)
            start, end = window(keys, lo_ms, hi_ms)
            page = page_of(keys, start, end, after, size, by_id=self.feeds_by_id)
            return [self._show(self._contacts[k[1]]) for k in page], max(end - start, 0)

    def bounced(
        self, lo_ms: int, hi_ms: int, after: int, size: int
    ) -> tuple[list[ContactBounce], int]:
        """Bounces with ``lo_ms <= date <= hi_ms``, by (date, externalId) or by id."""
        with self._lock:
            keys = self._bounces.keys
            start, end = window(keys, lo_ms, hi_ms)
            page = page_of(keys, start, end, after, size, by_id=self.feeds_by_id)
            out = [
                ContactBounce(date, kind, self._show(self._contacts[eid]), act_id)
                for date, eid, _, kind, act_id in page
                if eid in self._contacts
            ]
            return out, max(end - start, 0)

    def search(self, name: str, value: str, after: int, size: int) -> tuple[list[Contact], int]:
        """Contacts whose property ``name`` equals ``value`` (e-mail case-insensitively)."""
        with self._lock:
            kind = "externalId" if name == "externalId" else self.catalogue.type_of(name)
            if kind is None or kind == "set":
                raise PropertyInvalid("Property is invalid", name)
            if kind == "externalId":
                hits = [r for r in (self._contacts.get(value),) if r is not None]
            elif kind == "email":
                folded = value.casefold()
                hits = [
                    r for r in self._contacts.values()
                    if str(r.values.get(name, "")).casefold() == folded
                ]
            else:
                hits = [r for r in self._contacts.values() if str(r.values.get(name, "")) == value]
            return [self._show(r) for r in hits[after : after + size]], len(hits)

    # --- internals ------------------------------------------------------------

    def _require(self, external_id: str) -> ContactRecord:
        record = self._contacts.get(external_id)
        if record is None:
            raise not_found()
        return record

    def _insert(self, external_id: str, contact: ContactIn, *, update: bool, purge: bool) -> bool:
        record = self._contacts.get(external_id)
        if record is not None:
            if not update:
                raise ApiError(400, "CONTACT_ALREADY_EXISTS", "Contact already exists")
            self._api_write(record, contact, purge=purge)
            return False
        parsed = self.catalogue.parse(contact.properties or {})
        email = parsed.get("email")
        if self.dedupe_on_email and isinstance(email, str) and self._email_taken(email.lower()):
            raise ApiError(400, "CONTACT_ALREADY_EXISTS", "A contact with this e-mail address already exists")
        now = self.clock.now_ms()
        record = ContactRecord(
            external_id=external_id,
            created=now,
            last_changed=now,
            encrypted_id=encrypted_id(external_id, now),
            values=merged({}, parsed),
            test_group=bool(contact.testGroup),
            api_writes=1,
        )
        self._contacts[external_id] = record
        self._changes.add(now, external_id, replaces=False)
        return True

    def _email_taken(self, email: str) -> bool:
        # A scan is fine: the option is for tests of the deduplication rule, not for load.
        return any(
            isinstance(r.values.get("email"), str) and str(r.values["email"]).lower() == email
            for r in self._contacts.values()
        )

    def _api_write(self, record: ContactRecord, contact: ContactIn, *, purge: bool) -> None:
        if self._write(record, contact.properties or {}, contact.testGroup, purge=purge):
            record.api_changes = [*record.api_changes[1 - API_CHANGES_KEPT:], record.last_changed]
        record.api_writes += 1

    def _write(
        self, record: ContactRecord, properties: Mapping[str, Any], test_group: bool | None,
        *, purge: bool,
    ) -> bool:
        """Apply a write; True when it changed anything (then ``lastChanged`` moves)."""
        parsed = self.catalogue.parse(properties)
        values = merged({} if purge else record.values, parsed)
        group = record.test_group if test_group is None else test_group
        if values == record.values and group == record.test_group:
            return False
        record.values = values
        record.test_group = group
        self._touch(record)
        return True

    def _touch(self, record: ContactRecord) -> None:
        record.last_changed = max(self.clock.now_ms(), record.last_changed + 1)
        self._changes.add(record.last_changed, record.external_id, replaces=True)
        if self._changes.needs_compaction(len(self._contacts)):
            self._changes.compact(self._is_current)

    def _is_current(self, last_changed: int, external_id: str) -> bool:
        record = self._contacts.get(external_id)
        return record is not None and record.last_changed == last_changed

    def _show(self, record: ContactRecord) -> Contact:
        return render(record, self.catalogue)
