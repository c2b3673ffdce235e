"""The signed Spotler Mail+ contact endpoints (served under both path prefixes).

Bodies are read as JSON whatever the Content-Type says (clients differ), and
decoded leniently ("true" for true, numbers for strings where Jackson would
coerce). Read-only fields and nulls in a request are ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connector.sandbox.spotler.feeds import PageRequest, paging, parse_window
from connector.sandbox.spotler.state import SpotlerState
from connector.sandbox.spotler.store import not_found
from connector.sandbox.spotler.wire import (
    AddContactsRequest,
    ApiError,
    BouncesResponse,
    ContactRequest,
    ContactsResponse,
)

__all__ = ["ContactApi", "error_response", "json_response", "signed_url"]

log = logging.getLogger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")

_ENCODER = msgspec.json.Encoder()
_CONTACT_REQUEST = msgspec.json.Decoder(ContactRequest, strict=False)
_CONTACTS_REQUEST = msgspec.json.Decoder(AddContactsRequest, strict=False)


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(_ENCODER.encode(payload), status, media_type="application/json")


def error_response(exc: ApiError) -> Response:
    return json_response({"errorType": exc.error_type, "message": exc.message}, exc.status)


def _no_content() -> Response:
    return Response(status_code=204)


def _decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    if not body.strip():
        raise ApiError(400, "INVALID_PARAMS", "No request body given")
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise ApiError(400, "INVALID_PARAMS", f"Invalid request body: {exc}") from None


def signed_url(request: Request) -> str:
    """The URL the client signed: scheme, Host header and raw path as received, no query."""
    scope = request.scope
    host = request.headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    return f"{scope['scheme']}://{host}{raw_path.decode('latin-1')}"


class ContactApi:
    """Route handlers bound to one sandbox's state."""

    def __init__(self, state: SpotlerState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        guard = self._guarded
        return [
            Route("/contact", guard(self.insert), methods=["POST"]),
            Route("/contact/", guard(self.insert), methods=["POST"]),
            Route("/contact/list", guard(self.insert_many), methods=["POST"]),
            Route("/contact/updates/list", guard(self.updates), methods=["GET"]),
            Route("/contact/bounces/list", guard(self.bounces), methods=["GET"]),
            Route("/contact/properties/list", guard(self.properties), methods=["GET"]),
            Route("/contact/search", guard(self.search), methods=["GET"]),
            Route("/contact/anonymize/{externalId}", guard(self.anonymize), methods=["PUT"]),
            Route("/contact/inactivate/{externalId}", guard(self.inactivate), methods=["PUT"]),
            Route("/contact/{externalId}", guard(self.get), methods=["GET"]),
            Route("/contact/{externalId}", guard(self.update), methods=["PUT"]),
        ]

    def _guarded(self, handler: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                self.state.verifier.verify(
                    request.method,
                    signed_url(request),
                    request.scope["query_string"].decode("latin-1"),
                    request.headers.get("authorization"),
                )
                return await handler(request)
            except ApiError as exc:
                return error_response(exc)
            except Exception:
                log.exception("spotler sandbox: unexpected error on %s", request.url.path)
                return error_response(ApiError(500, "BACKEND_EXCEPTION", "Internal error"))

        return endpoint

    async def insert(self, request: Request) -> Response:
        body = _decode(_CONTACT_REQUEST, await request.body())
        if body.contact is None:
            raise ApiError(400, "INVALID_PARAMS", "No contact given")
        self.state.store.insert(body.contact, update=bool(body.update), purge=bool(body.purge))
        return _no_content()

    async def update(self, request: Request) -> Response:
        body = _decode(_CONTACT_REQUEST, await request.body())
        if body.contact is None:
            raise ApiError(400, "INVALID_PARAMS", "No contact given")
        external_id = request.path_params["externalId"]
        self.state.store.update(external_id, body.contact, purge=bool(body.purge))
        return _no_content()

    async def get(self, request: Request) -> Response:
        contact = self.state.store.get(request.path_params["externalId"])
        if contact is None:
            raise not_found()
        return json_response(contact)

    async def insert_many(self, request: Request) -> Response:
        body = _decode(_CONTACTS_REQUEST, await request.body())
        contacts = body.contacts or []
        limit = self.state.settings.max_bulk
        if len(contacts) > limit:
            raise ApiError(400, "INVALID_PARAMS", f"Too many contacts provided (max is {limit})")
        results = self.state.store.insert_many(
            contacts, update=bool(body.update), purge=bool(body.purge)
        )
        return json_response(results)

    async def updates(self, request: Request) -> Response:
        lo, hi = parse_window(request.query_params)
        page = PageRequest.from_query(request.query_params)
        contacts, total = self.state.store.changed(lo, hi, page.after, page.size)
        if self.state.settings.bare_array_feeds:
            return json_response(contacts)
        pages = paging(str(request.url), page, len(contacts), total)
        return json_response(ContactsResponse(pages, contacts))

    async def bounces(self, request: Request) -> Response:
        lo, hi = parse_window(request.query_params)
        page = PageRequest.from_query(request.query_params)
        bounces, total = self.state.store.bounced(lo, hi, page.after, page.size)
        if self.state.settings.bare_array_feeds:
            return json_response(bounces)
        pages = paging(str(request.url), page, len(bounces), total)
        return json_response(BouncesResponse(pages, bounces))

    async def properties(self, request: Request) -> Response:
        return json_response(self.state.store.catalogue.properties)

    async def search(self, request: Request) -> Response:
        name, sep, value = request.query_params.get("MPSearchQuery", "").partition("=")
        if not name or not sep or not value:
            raise ApiError(400, "INVALID_PARAMS", "Invalid MPSearchQuery")
        page = PageRequest.from_query(request.query_params)
        contacts, total = self.state.store.search(name, value, page.after, page.size)
        pages = paging(str(request.url), page, len(contacts), total)
        return json_response(ContactsResponse(pages, contacts))

    async def anonymize(self, request: Request) -> Response:
        self.state.store.anonymize(request.path_params["externalId"])
        return _no_content()

    async def inactivate(self, request: Request) -> Response:
        self.state.store.inactivate(request.path_params["externalId"])
        return _no_content()
