"""The AFAS Profit sandbox as an ASGI app: Profit REST under ``/ProfitRestServices``.

``create_app`` seeds a CRM and returns the app (fault injection in front of
the routes); ``create_app(...).afas`` is its state for in-process tests.
A GetConnector page waits for the cost of its skip (``skip_cost``) without
holding the state lock, so other requests go on meanwhile.
"""

from __future__ import annotations

import asyncio
import re

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.sandbox.afas.control import control_routes
from connector.sandbox.afas.errors import NOT_SUPPORTED, AfasError, error_json, fault_error
from connector.sandbox.afas.getconnector import GetQuery, QueryTooLong, parse_query
from connector.sandbox.afas.metainfo import ConnectorInfo, EnvInfo, MetaInfo, get_meta, update_meta
from connector.sandbox.afas.skip_cost import SkipCost, SkipCostSetting
from connector.sandbox.afas.state import AfasState
from connector.sandbox.afas.updates import CONNECTORS, InvalidJson, apply_update
from connector.sandbox.faults import FaultInjector
from connector.sandbox.guard import MAX_CONTACTS, SandboxGuard

__all__ = ["DEFAULT_TOKEN", "PROFIT_VERSION", "SKIP_DELAY_HEADER", "AfasSandbox", "create_app", "route_of"]

# The sandbox's published default token: not a secret of any real environment.
DEFAULT_TOKEN = (
    "<token><version>1</version><data>"  # noqa: S105
    "5A1B0C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F9"
    "</data></token>"
)
PROFIT_VERSION = "6.6.9"
_PREFIX = re.compile(r"^/profitrestservices(?=/|$)", re.IGNORECASE)
_HEADERS = {"cache-control": "no-store, no-cache"}
_JSON = "application/json; charset=utf-8"
SKIP_DELAY_HEADER = "x-sandbox-skip-delay-ms"  # what a page waited for its skip


def route_of(method: str, path: str) -> str:
    """The route name a request is counted under, e.g. ``GET /connectors/Spotler_Contacts``."""
    match = _PREFIX.match(path)
    if match is None:
        return f"{method} {path}"
    parts = [p for p in path[match.end() :].split("/") if p]
    if parts and parts[0].lower() == "metainfo":
        return f"{method} /" + "/".join(["metainfo", *(p.lower() for p in parts[1:2]), *parts[2:]])
    if parts and parts[0].lower() == "connectors":
        names = [next((c for c in CONNECTORS if c.lower() == p.lower()), p) for p in parts[1:]]
        return f"{method} /" + "/".join(["connectors", *names])
    return f"{method} /" + "/".join(parts)


def _empty(status: int) -> Response:
    return Response(b"", status, headers=_HEADERS)


def _ok(body: bytes, status: int = 200) -> Response:
    if not body:
        return Response(b"", status, headers=_HEADERS)
    return Response(body, status, headers=_HEADERS, media_type=_JSON)


def _afas_error(exc: AfasError) -> Response:
    return Response(error_json(exc.message, exc.number), 500, headers=_HEADERS, media_type=_JSON)


def _not_granted(kind: str, name: str) -> AfasError:
    return AfasError(
        f"{kind} '{name}' is not supported for this app or the user is not authorized.",
        NOT_SUPPORTED,
    )


class AfasSandbox(FaultInjector):
    """FaultInjector in front of the Profit routes and the control API; ``afas`` is the state."""

    def __init__(
        self, state: AfasState, *, control_token: str | None = None, skip_cost: SkipCost | None = None
    ) -> None:
        self.afas = state
        self.skip_cost = SkipCostSetting(skip_cost or SkipCost())
        routes = [
            *control_routes(state, self, self.skip_cost),
            Route("/{path:path}", self._api, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]
        router = Starlette(routes=routes)
        router.state.afas = state
        guarded = SandboxGuard(router, error_body=self._error_body, control_token=control_token)
        super().__init__(guarded, error_body=self._error_body, route_of=route_of)

    def _error_body(self, status: int, reason: str) -> tuple[bytes, dict[str, str]]:
        return fault_error(status, reason, self.faults.maintenance_retry_after_s)

    async def _api(self, request: Request) -> Response:
        path = request.url.path
        match = _PREFIX.match(path)
        if match is None:
            return _empty(404)
        raw_query: bytes = request.scope.get("query_string", b"")
        state = self.afas
        if not state.authorised(request.headers.get("authorization")):
            return _empty(401)
        parts = [p for p in path[match.end() :].split("/") if p]
        body = await request.body()
        query, delay = None, 0.0
        try:
            if request.method == "GET" and len(parts) == 2 and parts[0].lower() == "connectors":
                query = parse_query(raw_query)
                delay = self.skip_cost.current.delay_s(query.skip)
                if delay:
                    await asyncio.sleep(delay)
            with state.lock:
                response = self._dispatch(request.method, parts, query, body)
            if query is not None:
                response.headers[SKIP_DELAY_HEADER] = str(round(delay * 1000))
            return response
        except AfasError as exc:
            return _afas_error(exc)
        except QueryTooLong:
            return _empty(404)
        except InvalidJson:
            return Response(b'{"message":"Invalid json"}', 400, headers=_HEADERS, media_type=_JSON)

    def _dispatch(self, method: str, parts: list[str], query: GetQuery | None, body: bytes) -> Response:
        state = self.afas
        head = parts[0].lower() if parts else ""
        if head == "connectors" and len(parts) >= 2:
            if query is not None:
                name = state.find(parts[1])
                if name is None or name not in state.get_connectors():
                    raise _not_granted("GetConnector", parts[1])
                return _ok(state.views[name].page(query))
            if method == "DELETE":
                raise AfasError("Deleting is not supported for this UpdateConnector.", NOT_SUPPORTED)
            name = next((c for c in CONNECTORS if c.lower() == parts[1].lower()), parts[1])
            if name not in state.update_connectors():
                raise _not_granted("UpdateConnector", parts[1])
            now = state.clock.now_local()
            status, payload = apply_update(state.store, state.catalogue, now, method, parts[1:], body)
            return _ok(payload, status)
        if method != "GET":
            return _empty(404)
        if head == "metainfo" and len(parts) == 1:
            return _ok(msgspec.json.encode(self._metainfo()))
        if head == "metainfo" and len(parts) == 3 and parts[1].lower() in ("get", "update"):
            return _ok(self._describe(parts[1].lower(), parts[2]))
        if head == "profitversion" and len(parts) == 1:
            return _ok(msgspec.json.encode({"version": PROFIT_VERSION}))
        return _empty(404)

    def _metainfo(self) -> MetaInfo:
        state = self.afas
        return MetaInfo(
            updateConnectors=[
                ConnectorInfo(c, update_meta(state.catalogue, c).description) for c in state.update_connectors()
            ],
            getConnectors=[ConnectorInfo(c, state.views[c].defn.description or c) for c in state.get_connectors()],
            info=EnvInfo(
                envid="T12345AA",
                appName=state.token.appName,
                group="AuthorizationGroup 101 (12345.SPOTLER)",
                tokenExpiry="0",
            ),
        )

    def _describe(self, kind: str, name: str) -> bytes:
        state = self.afas
        if kind == "get":
            found = state.find(name)
            if found is None or found not in state.get_connectors():
                raise _not_granted("GetConnector", name)
            view = state.views[found]
            return msgspec.json.encode(get_meta(found, view.defn.description or found, view.columns))
        connector = next((c for c in state.update_connectors() if c.lower() == name.lower()), None)
        if connector is None:
            raise _not_granted("UpdateConnector", name)
        return msgspec.json.encode(update_meta(state.catalogue, connector))


def create_app(
    contacts: int,
    seed: int,
    token: str,
    *,
    edge_cases: bool = True,
    control_token: str | None = None,
    skip_cost: SkipCost | None = None,
) -> AfasSandbox:
    """A seeded sandbox accepting ``token`` (the whole ``<token>…</token>`` XML).

    ``contacts`` is at most ``MAX_CONTACTS``; with ``control_token`` the control API
    requires it as a bearer token. ``skip_cost`` is the deep-skip curve (default: on).
    """
    if not 0 <= contacts <= MAX_CONTACTS:
        raise ValueError(f"contacts must be between 0 and {MAX_CONTACTS:,}")
    state = AfasState(contacts=contacts, seed=seed, token=token, edge_cases=edge_cases)
    return AfasSandbox(state, control_token=control_token, skip_cost=skip_cost)
