"""UpdateConnectors KnOrganisation, KnPerson and KnContact, nested objects included.

Verbs: ``POST`` inserts, ``PUT`` updates; ``POST connectors/KnOrganisation/KnContact``
updates the organisation and inserts the contact. With a match code
(``MatchOga``/``MatchPer``) the difference falls away: one match is updated,
none is inserted, several are an error; ``PUT`` with match 0 needs an
existing ``BcCo``. ``KnContact`` takes ``PUT`` only and finds its contact by
``CdId`` (+ ``ViKc``), by ``BcCoOga`` + ``BcCoPer``, by ``BcCoOga`` + ``ExAd``
(a department or delivery address) or by ``BcCoPer`` (a person's own
contact). ``Objects`` may be an object or an array, ``Element`` an object or
an array; ``@Action`` overrides the verb. Scalars are coerced as Profit does
("1", 1 and true are all yes); "" clears a field. Contacts are never deleted.

Modification dates: every entity an element *writes* gets the call's time,
whether or not a value really changed (Profit stamps every successful save).
An element that carries only its identifying fields (``BcCo``, ``MatchPer``…)
merely references its entity and leaves the date alone.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import msgspec

from connector.sandbox.afas.catalogue import Catalogue
from connector.sandbox.afas.entities import Writer
from connector.sandbox.afas.errors import NOT_SUPPORTED, AfasError
from connector.sandbox.afas.journal import Journal
from connector.sandbox.afas.model import Store

__all__ = ["CONNECTORS", "InvalidJson", "Node", "apply_update", "elements"]

CONNECTORS = ("KnOrganisation", "KnPerson", "KnContact")


class InvalidJson(Exception):
    """The body is not JSON: Profit answers 400 ``{"message": "Invalid json"}``."""


class Node(msgspec.Struct):
    """One element of a body: its fields, its sub-objects in order, and its action."""

    fields: dict[str, Any]
    objects: list[tuple[str, Node]]
    action: str


def elements(name: str, node: Any, action: str, sub: str | None = None) -> list[Node]:
    """The elements under ``{name: {"Element": …}}`` (``node`` is the value of ``name``)."""
    if not isinstance(node, dict) or "Element" not in node:
        raise AfasError(f"Object '{name}' has no 'Element'.")
    raw = node["Element"]
    out: list[Node] = []
    for element in raw if isinstance(raw, list) else [raw]:
        if not isinstance(element, dict):
            raise AfasError(f"An element of object '{name}' is not an object.")
        fields = element.get("Fields") or {}
        if not isinstance(fields, dict):
            raise AfasError(f"'Fields' of object '{name}' is not an object.")
        fields = dict(fields)
        explicit = fields.pop("@Action", None) or element.get("@Action") or element.get("@action")
        mine = str(explicit).lower() if explicit else action
        if mine not in ("insert", "update", "delete"):
            raise AfasError(f"Action '{explicit}' is not valid.")
        if mine == "delete":
            raise AfasError(f"Deleting is not supported for object '{name}'.", NOT_SUPPORTED)
        objects: list[tuple[str, Node]] = []
        raw_objects = element.get("Objects") or []
        for holder in raw_objects if isinstance(raw_objects, list) else [raw_objects]:
            if not isinstance(holder, dict):
                raise AfasError(f"'Objects' of object '{name}' is not valid.")
            for child, child_node in holder.items():
                child_action = "insert" if child == sub else mine
                objects += [(child, n) for n in elements(child, child_node, child_action)]
        out.append(Node(fields=fields, objects=objects, action=mine))
    return out


def apply_update(
    store: Store,
    catalogue: Catalogue,
    now: datetime,
    method: str,
    path: list[str],
    body: bytes,
) -> tuple[int, bytes]:
    """Run one UpdateConnector call as a transaction: (status, body) or AfasError."""
    connector = next((c for c in CONNECTORS if c.lower() == path[0].lower()), None)
    sub = path[1] if len(path) > 1 else None
    if connector is None or len(path) > 2 or method not in ("POST", "PUT"):
        raise AfasError(
            "General message: This UpdateConnector is not supported or the user is not authorized.",
            NOT_SUPPORTED,
        )
    if connector == "KnContact" and (method != "PUT" or sub is not None):
        raise AfasError("KnContact only changes existing contacts (PUT).", NOT_SUPPORTED)
    if sub is not None and sub not in catalogue.objects[connector].objects:
        raise AfasError(f"Object '{sub}' is not a sub-object of '{connector}'.", NOT_SUPPORTED)
    try:
        doc = msgspec.json.decode(body) if body.strip() else None
    except msgspec.DecodeError:
        raise InvalidJson from None
    if not isinstance(doc, dict) or connector not in doc:
        raise AfasError(f"The data does not contain object '{connector}'.")
    top_action = "update" if method == "PUT" or sub is not None else "insert"
    nodes = elements(connector, doc[connector], top_action, sub)
    journal = Journal(store)
    writer = Writer(store, catalogue, journal, now)
    results: list[dict[str, Any]] = []
    try:
        for node in nodes:
            if connector == "KnOrganisation":
                org = writer.organisation(node)
                results.append({"BcCo": org.bc_co, "BcId": org.bc_id})
            elif connector == "KnPerson":
                person = writer.person(node)
                results.append({"BcCo": person.bc_co, "BcId": person.bc_id})
            else:
                writer.standalone_contact(node)
    except Exception:
        journal.rollback()
        raise
    journal.commit(now)
    store.note_api_change(journal.written_rows, int(time.time() * 1000))
    if connector == "KnContact":
        return 201, b""
    payload = results[0] if len(results) == 1 else results
    return 201, msgspec.json.encode({"results": {connector: payload}})
