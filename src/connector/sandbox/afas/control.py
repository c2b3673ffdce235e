"""The control API under ``/_sandbox/``: seed, inspect, edit, clock, faults, skip cost, … (``guard`` bounds it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.sandbox.afas.clock import format_afas
from connector.sandbox.afas.definitions import (
    ConnectorDef,
    default_definitions,
    resolve_columns,
    rows_builder,
)
from connector.sandbox.afas.entities import ADDRESS_CODES, CONTROL_FIELDS, Writer, apply_fields
from connector.sandbox.afas.errors import AfasError
from connector.sandbox.afas.journal import Journal
from connector.sandbox.afas.model import Contact, Entity
from connector.sandbox.afas.skip_cost import SkipCost, SkipCostSetting
from connector.sandbox.afas.state import AfasState, TokenConfig
from connector.sandbox.faults import FaultInjector, Faults
from connector.sandbox.guard import MAX_CONTACTS

__all__ = ["ClockRequest", "EditRequest", "ResetRequest", "control_routes"]

Handler = Callable[[Request], Awaitable[Response]]


class ResetRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """New seed data; definitions, token grants, faults and request counts back to defaults.

    The skip cost goes back to the curve the sandbox was started with.
    """

    contacts: Annotated[int, msgspec.Meta(ge=0, le=MAX_CONTACTS)] = 1000
    seed: int = 1
    edge_cases: bool = True


class EditRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An edit made inside AFAS: UpdateConnector field codes (and address codes)."""

    entity: Literal["contact", "person", "organisation"]
    id: int | str
    fields: dict[str, Any]


class ClockRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    now: datetime | None = None
    frozen: bool = True
    offset_s: float | None = None
    real: bool = False


def _json(payload: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(payload), status, media_type="application/json")


def _error(message: str, status: int = 400) -> Response:
    return _json({"error": message}, status)


async def _decode(request: Request, type_: Any) -> Any:
    body = await request.body()
    return msgspec.json.decode(body or b"{}", type=type_)


def control_routes(state: AfasState, injector: FaultInjector, skip_cost: SkipCostSetting) -> list[Route]:
    """The routes; every handler holds the state lock."""
    default_columns = resolve_columns(default_definitions()["Spotler_Contacts"], state.catalogue)

    def contact_view(contact: Contact) -> dict[str, Any]:
        values = rows_builder(state.store, default_columns)([contact])[0]
        row = {
            c.id: format_afas(v) if c.dataType == "date" and v is not None else v
            for c, v in zip(default_columns, values, strict=True)
        }
        return {
            **row,
            "CdId": contact.cd_id,
            "ViKc": contact.kind,
            "BcCoOga": contact.org,
            "BcCoPer": contact.person,
            "fields": contact.fields,
            "address": contact.address,
            "created": contact.created,
            "modified": contact.modified,
            "apiChanges": list(state.store.api_changes.get(contact.cd_id, [])),
        }

    def entity_view(entity: Entity) -> dict[str, Any]:
        if isinstance(entity, Contact):
            return contact_view(entity)
        return {
            "BcCo": entity.bc_co,
            "BcId": entity.bc_id,
            "fields": entity.fields,
            "address": entity.address,
            "postal": entity.postal,
            "created": entity.created,
            "modified": entity.modified,
            "modified_afas": format_afas(entity.modified),
            "contacts": state.store.affected(entity),
        }

    def locked(handler: Callable[[Request], Awaitable[Response]]) -> Handler:
        async def run(request: Request) -> Response:
            await request.body()  # read (and cache) the body before taking the lock
            try:
                with state.lock:
                    return await handler(request)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                return _error(f"invalid request: {exc}")

        return run

    async def reset(request: Request) -> Response:
        body: ResetRequest = await _decode(request, ResetRequest)
        state.reset(contacts=body.contacts, seed=body.seed, edge_cases=body.edge_cases)
        injector.set_faults(Faults())
        skip_cost.reset()
        injector.reset_stats()
        return _json(state.store.counts())

    def lookup(kind: str, key: str) -> Entity | None:
        store = state.store
        if kind == "contact":
            return store.contacts.get(int(key)) if key.lstrip("-").isdigit() else None
        return (store.persons if kind == "person" else store.organisations).get(key)

    def show(kind: str) -> Handler:
        async def handler(request: Request) -> Response:
            entity = lookup(kind, request.path_params["key"])
            return (
                _error(f"no {kind} {request.path_params['key']}", 404) if entity is None else _json(entity_view(entity))
            )

        return handler

    async def edit(request: Request) -> Response:
        body: EditRequest = await _decode(request, EditRequest)
        entity = lookup(body.entity, str(body.id))
        if entity is None:
            return _error(f"no {body.entity} {body.id}", 404)
        obj = {"contact": "KnContact", "person": "KnPerson", "organisation": "KnOrganisation"}[body.entity]
        now = state.clock.now_local()
        journal = Journal(state.store)
        writer = Writer(state.store, state.catalogue, journal, now)
        fixed = sorted(set(body.fields) & CONTROL_FIELDS)
        if fixed:
            return _error(f"identifying fields cannot be edited: {', '.join(fixed)}")
        own = {k: v for k, v in body.fields.items() if k in state.catalogue.fields(obj)}
        address = {k: v for k, v in body.fields.items() if k not in own}
        try:
            values = writer.coerce(obj, own)
            addr = writer.coerce(ADDRESS_CODES[0], address) if address else {}
        except AfasError as exc:
            return _error(exc.message)
        journal.wrote(entity)
        apply_fields(entity, values)
        if addr:
            merged = {**(entity.address or {"CoId": "NL"}), **addr}
            entity.address = {k: v for k, v in merged.items() if v is not None}
        journal.commit(now)
        return _json(entity_view(entity))

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            body: ClockRequest = await _decode(request, ClockRequest)
            if body.real:
                state.clock.set_real()
            elif body.now is not None:
                if body.now.tzinfo is None:
                    return _error("'now' needs an offset, e.g. 2024-03-31T01:59:00+01:00")
                state.clock.set_now(body.now, frozen=body.frozen)
            elif body.offset_s is not None:
                state.clock.set_offset(body.offset_s)
            else:
                return _error("send one of 'now', 'offset_s' or 'real'")
        return _json(state.clock.view())

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            injector.set_faults(await _decode(request, Faults))
        return _json(injector.faults)

    async def deep_skip(request: Request) -> Response:
        if request.method == "PUT":
            skip_cost.current = await _decode(request, SkipCost)
        return _json(skip_cost.current)

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            injector.reset_stats()
            return Response(status_code=204)
        return _json(injector.stats())

    async def request_log(request: Request) -> Response:
        since = float(request.query_params.get("since") or 0)
        records = injector.log(since)
        return _json(
            [{"at": r.at, "method": r.method, "route": r.route, "status": r.status, "skip": r.skip} for r in records]
        )

    async def getconnector(request: Request) -> Response:
        name = request.path_params["name"]
        if request.method == "PUT":
            try:
                state.set_definition(name, await _decode(request, ConnectorDef))
            except ValueError as exc:
                return _error(str(exc))
        elif request.method == "DELETE":
            return Response(status_code=204 if state.remove_definition(name) else 404)
        found = state.find(name)
        if found is None:
            return _error(f"no GetConnector {name}", 404)
        return _json({"id": found, "definition": state.views[found].defn})

    async def token(request: Request) -> Response:
        if request.method == "PUT":
            state.set_token(await _decode(request, TokenConfig))
        granted = state.token
        return _json(
            {
                "getConnectors": state.get_connectors(),
                "updateConnectors": state.update_connectors(),
                "appName": granted.appName,
                "custom_token": granted.token is not None,
            }
        )

    async def summary(request: Request) -> Response:
        return _json(
            {
                **state.store.counts(),
                "version": state.store.version,
                "getConnectors": list(state.views),
                "clock": state.clock.view(),
            }
        )

    return [
        Route("/_sandbox/reset", locked(reset), methods=["POST"]),
        Route("/_sandbox/contacts/{key}", locked(show("contact")), methods=["GET"]),
        Route("/_sandbox/persons/{key}", locked(show("person")), methods=["GET"]),
        Route("/_sandbox/organisations/{key}", locked(show("organisation")), methods=["GET"]),
        Route("/_sandbox/edit", locked(edit), methods=["POST"]),
        Route("/_sandbox/clock", locked(clock), methods=["GET", "POST"]),
        Route("/_sandbox/faults", locked(faults), methods=["GET", "PUT"]),
        Route("/_sandbox/skip-cost", locked(deep_skip), methods=["GET", "PUT"]),
        Route("/_sandbox/requests", locked(requests), methods=["GET", "DELETE"]),
        Route("/_sandbox/requests/log", locked(request_log), methods=["GET"]),
        Route("/_sandbox/getconnector/{name}", locked(getconnector), methods=["GET", "PUT", "DELETE"]),
        Route("/_sandbox/token", locked(token), methods=["GET", "PUT"]),
        Route("/_sandbox/summary", locked(summary), methods=["GET"]),
    ]
