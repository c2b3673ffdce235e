"""The control API under ``/_sandbox/``: seed, inspect, inject, configure (``guard`` bounds it).

Injected events (edit, unsubscribe, bounce) always give the contact a new
``lastChanged``, so they show up in ``contact/updates/list`` like a
recipient's action does. ``reset`` returns the whole sandbox to a fresh
state: no contacts or bounces, the default (or the given) catalogue, default
settings, no faults, zeroed request counters and the real clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connector.sandbox.faults import FaultInjector, Faults
from connector.sandbox.guard import MAX_CONTACTS
from connector.sandbox.spotler.api import error_response, json_response
from connector.sandbox.spotler.feeds import AMSTERDAM
from connector.sandbox.spotler.state import SandboxSettings, SpotlerState
from connector.sandbox.spotler.store import not_found
from connector.sandbox.spotler.wire import AddContactsRequest, ApiError, Property

__all__ = ["ControlApi"]

Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


class ResetBody(msgspec.Struct, forbid_unknown_fields=True):
    catalogue: list[Property] | None = None


class UnsubscribeBody(msgspec.Struct, forbid_unknown_fields=True):
    externalId: str
    bit: int | None = None
    global_: bool = msgspec.field(default=False, name="global")
    property: str = "permissions"


class BounceBody(msgspec.Struct, forbid_unknown_fields=True):
    externalId: str
    type: Literal["HARDBOUNCE", "SOFTBOUNCE"]
    encryptedActId: str | None = None


class EditBody(msgspec.Struct, forbid_unknown_fields=True):
    externalId: str
    properties: dict[str, Any]


class ClockBody(msgspec.Struct, forbid_unknown_fields=True):
    now: str | None = None  # ISO-8601; without an offset: Amsterdam local time
    frozen: bool = False
    offset_s: float | None = None
    advance_s: float | None = None
    real: bool = False


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "INVALID_PARAMS", f"Invalid request body: {exc}") from None


def _ok() -> Response:
    return json_response({"ok": True})


class ControlApi:
    """Route handlers of the control API, bound to one sandbox's state."""

    def __init__(self, state: SpotlerState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        w = self._wrapped
        return [
            Route("/reset", w(self.reset), methods=["POST"]),
            Route("/contacts", w(self.contacts), methods=["GET"]),
            Route("/contacts", w(self.seed), methods=["POST"]),
            Route("/contacts/{externalId}", w(self.contact), methods=["GET"]),
            Route("/unsubscribe", w(self.unsubscribe), methods=["POST"]),
            Route("/bounce", w(self.bounce), methods=["POST"]),
            Route("/edit", w(self.edit), methods=["POST"]),
            Route("/clock", w(self.clock), methods=["GET", "POST"]),
            Route("/faults", w(self.faults), methods=["GET", "PUT"]),
            Route("/requests", w(self.requests), methods=["GET", "DELETE"]),
            Route("/requests/log", w(self.request_log), methods=["GET"]),
            Route("/settings", w(self.settings), methods=["GET", "PUT"]),
            Route("/properties", w(self.properties), methods=["GET", "PUT"]),
        ]

    def _wrapped(self, handler: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(exc)

        return endpoint

    async def reset(self, request: Request) -> Response:
        body = _decode(await request.body(), ResetBody)
        state = self.state
        state.store.reset(body.catalogue)
        state.apply_settings(SandboxSettings())
        state.verifier.forget_nonces()
        state.clock.set_real()
        if state.faults is not None:
            state.faults.set_faults(Faults())
            state.faults.reset_stats()
        return _ok()

    async def contacts(self, request: Request) -> Response:
        return json_response(self.state.store.views())

    async def seed(self, request: Request) -> Response:
        """Add contacts without signing or the bulk limit; ``update`` defaults to true."""
        body = _decode(await request.body(), AddContactsRequest)
        if len(body.contacts or []) > MAX_CONTACTS:
            raise ApiError(400, "INVALID_PARAMS", f"at most {MAX_CONTACTS:,} contacts per call")
        update = True if body.update is None else body.update
        results = self.state.store.insert_many(
            body.contacts or [], update=update, purge=bool(body.purge)
        )
        return json_response(results)

    async def contact(self, request: Request) -> Response:
        view = self.state.store.view(request.path_params["externalId"])
        if view is None:
            raise not_found()
        return json_response(view)

    async def unsubscribe(self, request: Request) -> Response:
        body = _decode(await request.body(), UnsubscribeBody)
        if body.bit is None and not body.global_:
            raise ApiError(400, "INVALID_PARAMS", "Give a bit or global: true")
        bit = None if body.global_ else body.bit
        self.state.store.unsubscribe(body.externalId, bit=bit, name=body.property)
        return _ok()

    async def bounce(self, request: Request) -> Response:
        body = _decode(await request.body(), BounceBody)
        self.state.store.bounce(
            body.externalId, body.type, act_id=body.encryptedActId,
            soft_limit=self.state.settings.soft_bounces_to_inactive,
        )
        return _ok()

    async def edit(self, request: Request) -> Response:
        body = _decode(await request.body(), EditBody)
        self.state.store.edit(body.externalId, body.properties)
        return _ok()

    async def clock(self, request: Request) -> Response:
        clock = self.state.clock
        if request.method == "POST":
            body = _decode(await request.body(), ClockBody)
            if body.real:
                clock.set_real()
            elif body.now is not None:
                clock.set_now(_instant(body.now), frozen=body.frozen)
            elif body.offset_s is not None:
                clock.set_offset(body.offset_s)
            elif body.advance_s is not None:
                clock.advance(body.advance_s)
            else:
                raise ApiError(400, "INVALID_PARAMS", "Give now, offset_s, advance_s or real")
        return json_response(clock.state())

    async def faults(self, request: Request) -> Response:
        injector = self._injector()
        if request.method == "PUT":
            injector.set_faults(_decode(await request.body(), Faults))
        return json_response(injector.faults)

    async def requests(self, request: Request) -> Response:
        injector = self._injector()
        if request.method == "DELETE":
            injector.reset_stats()
        return json_response(injector.stats())

    async def request_log(self, request: Request) -> Response:
        try:
            since = float(request.query_params.get("since", "0"))
        except ValueError:
            raise ApiError(400, "INVALID_PARAMS", "since must be epoch seconds") from None
        records = self._injector().log(since)
        return json_response([
            {"at": r.at, "method": r.method, "route": r.route, "status": r.status} for r in records
        ])

    async def settings(self, request: Request) -> Response:
        if request.method == "PUT":
            self.state.apply_settings(_decode(await request.body(), SandboxSettings))
        return json_response(self.state.settings)

    async def properties(self, request: Request) -> Response:
        if request.method == "PUT":
            catalogue = _decode(await request.body(), list[Property])
            names = [p.name for p in catalogue]
            if len(set(names)) != len(names):
                raise ApiError(400, "INVALID_PARAMS", "Duplicate property name")
            self.state.store.replace_catalogue(catalogue)
        return json_response(self.state.store.catalogue.properties)

    def _injector(self) -> FaultInjector:
        if self.state.faults is None:
            raise ApiError(404, "RESOURCE_NOT_FOUND", "No fault injector")
        return self.state.faults


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "INVALID_PARAMS", "now must be ISO-8601") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=AMSTERDAM)
