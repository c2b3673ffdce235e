"""Shared ground for the producer tests: both sandboxes over HTTP, a settable clock, an outbox.

The sandboxes are the real in-process HTTP servers; what a test changes in them
goes through their control API (``/_sandbox/``). A producer's only write path is
its sink: the ``Outbox`` hands it enqueue functions that append to lists, or
raise on a chosen call to stand for a broker failure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import msgspec
import pytest
import redis

from connector.clients.afas import AfasClient, page_size_for
from connector.clients.spotler import SpotlerClient
from connector.producers.afas import AfasProducer
from connector.producers.sink import BATCH_SIZE, RedisSink
from connector.producers.spotler import SpotlerProducer
from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.app import create_app as create_afas
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET
from connector.sandbox.spotler.app import create_app as create_spotler
from connector.schemas.events import AfasChange, ContactChange, SpotlerBatch, field_writes
from connector.schemas.mapping import Mapping, load_mapping
from connector.state.agreed import AgreedStore, ContactState
from connector.state.ordering import CommitItem, ContactWrite, Ordering
from connector.state.rejections import RejectionStore
from connector.sync.rows import ContactRecord, Rejection, decode_row

MAPPING: Mapping = load_mapping(None)
GETCONNECTOR = "Spotler_Contacts"
PAGE_SIZE = page_size_for(len(MAPPING.columns))  # the producer's own page size


class BrokerDown(Exception):
    """What an enqueue raises when the broker is unreachable."""


class Clock:
    """The producer's "now": set by the test, never read from the machine."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Outbox:
    """The enqueue functions handed to a ``RedisSink``; ``fail_at`` makes the n-th Spotler enqueue raise."""

    def __init__(self) -> None:
        self.batches: list[SpotlerBatch] = []
        self.afas: list[AfasChange] = []
        self.fail_at: int | None = None
        self.calls = 0

    def enqueue_spotler(self, batch: SpotlerBatch) -> None:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise BrokerDown(f"broker unreachable at enqueue {self.calls}")
        self.batches.append(batch)

    def enqueue_afas(self, change: AfasChange) -> None:
        self.afas.append(change)

    def sink(self, client: redis.Redis) -> RedisSink:
        return RedisSink(client, self.enqueue_spotler, self.enqueue_afas)

    @property
    def changes(self) -> list[ContactChange]:
        return [change for batch in self.batches for change in batch.changes]

    def sent_ids(self) -> list[str]:
        return [change.contact_id for change in self.changes]

    def clear(self) -> None:
        self.batches.clear()
        self.afas.clear()
        self.calls = 0


class Recorder(httpx.BaseTransport):
    """The real HTTP transport, every exchange kept; ``before`` runs ahead of each request and
    ``edit`` may rewrite a response body (the sandbox's answer, altered on its way to the client)."""

    def __init__(self, before: Callable[[httpx.Request, int], None] | None = None) -> None:
        self._inner = httpx.HTTPTransport()
        self.before = before
        self.edit: Callable[[httpx.Request, bytes], bytes] | None = None
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.before is not None:
            self.before(request, len(self.requests))
        response = self._inner.handle_request(request)
        body = response.read()
        response.close()
        if self.edit is not None:
            body = self.edit(request, body)
        self.bodies.append(body)
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    def params(self, path_end: str) -> list[dict[str, str]]:
        """The query parameters of every request whose path ends in ``path_end``, in order."""
        return [dict(parse_qsl(r.url.query.decode(), keep_blank_values=True))
                for r in self.requests if r.url.path.endswith(path_end)]

    def row_ids(self, path_end: str, key: str = "ContactId") -> list[list[str]]:
        """The key of every row each such request was answered with."""
        return [[str(row[key]) for row in msgspec.json.decode(body)["rows"]]
                for r, body in zip(self.requests, self.bodies, strict=True) if r.url.path.endswith(path_end)]

    def clear(self) -> None:
        self.requests.clear()
        self.bodies.clear()

    def close(self) -> None:
        self._inner.close()


def filter_groups(params: dict[str, str]) -> list[list[tuple[str, int, str]]]:
    """A GetConnector request's filter as OR-ed groups of AND-ed (field, operator, value)."""
    if "filterjson" in params:
        filters = msgspec.json.decode(params["filterjson"])["Filters"]["Filter"]
        return [[(f["@FieldId"], int(f["@OperatorType"]), f["#text"]) for f in group["Field"]]
                for group in filters]
    if "filterfieldids" not in params:
        return []
    fields, values, ops = (params[k].split(";") for k in ("filterfieldids", "filtervalues", "operatortypes"))
    return [list(zip(f.split(","), map(int, o.split(",")), v.split(","), strict=True))
            for f, v, o in zip(fields, values, ops, strict=True)]


class Control:
    """A sandbox's control API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=f"{url}/_sandbox", timeout=120)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, path, json=body)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def close(self) -> None:
        self.http.close()


class AfasSandbox(Control):
    """The AFAS sandbox: seeded under a frozen clock, edited the way a user edits in Profit."""

    @property
    def base_url(self) -> str:
        return f"{self.url}/ProfitRestServices"

    def set_clock(self, now: datetime) -> None:
        self.call("POST", "/clock", {"now": now.isoformat(), "frozen": True})

    def reset(self, contacts: int, seed: int) -> None:
        self.call("POST", "/reset", {"contacts": contacts, "seed": seed})

    def edit(self, entity: str, key: int | str, **fields: Any) -> dict[str, Any]:
        view: dict[str, Any] = self.call("POST", "/edit", {"entity": entity, "id": key, "fields": fields})
        return view

    def contact(self, contact_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self.call("GET", f"/contacts/{contact_id}")
        return view

    def person(self, number: str) -> dict[str, Any]:
        view: dict[str, Any] = self.call("GET", f"/persons/{number}")
        return view

    def faults(self, **faults: Any) -> None:
        self.call("PUT", "/faults", faults)

    def definition(self) -> dict[str, Any]:
        found: dict[str, Any] = self.call("GET", f"/getconnector/{GETCONNECTOR}")["definition"]
        return found

    def define(self, definition: dict[str, Any]) -> None:
        self.call("PUT", f"/getconnector/{GETCONNECTOR}", definition)

    def client(self, transport: httpx.BaseTransport | None = None) -> AfasClient:
        return AfasClient(self.base_url, DEFAULT_TOKEN, transport=transport)


class SpotlerSandbox(Control):
    """The Spotler sandbox, its clock frozen so that every event has a chosen ``lastChanged``."""

    @property
    def base_url(self) -> str:
        return f"{self.url}/integrationservice-1.1.0"

    def set_clock(self, now: datetime) -> None:
        self.call("POST", "/clock", {"now": now.isoformat(), "frozen": True})

    def unsubscribe(self, external_id: str, bit: int) -> None:
        self.call("POST", "/unsubscribe", {"externalId": external_id, "bit": bit})

    def bounce(self, external_id: str, kind: str) -> None:
        self.call("POST", "/bounce", {"externalId": external_id, "type": kind})

    def edit(self, external_id: str, **properties: Any) -> None:
        self.call("POST", "/edit", {"externalId": external_id, "properties": properties})

    def seed(self, *contacts: dict[str, Any]) -> None:
        self.call("POST", "/contacts", {"contacts": list(contacts)})

    def last_changed(self, external_id: str) -> int:
        return int(self.call("GET", f"/contacts/{external_id}")["lastChanged"])

    def client(self, transport: httpx.BaseTransport | None = None) -> SpotlerClient:
        return SpotlerClient(self.base_url, DEFAULT_KEY, DEFAULT_SECRET, transport=transport)


class Sandboxes:
    """Starts sandboxes on free ports and stops them (and their clients) at the end of a test."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack

    def afas(self, contacts: int, seed: int, seeded_at: datetime) -> AfasSandbox:
        """An AFAS sandbox whose seeded modification dates all lie before ``seeded_at``."""
        server = self.stack.enter_context(BackgroundServer(create_afas(contacts=0, seed=seed, token=DEFAULT_TOKEN)))
        sandbox = AfasSandbox(server.url)
        self.stack.callback(sandbox.close)
        sandbox.set_clock(seeded_at)
        sandbox.reset(contacts, seed)
        return sandbox

    def spotler(self, now: datetime) -> SpotlerSandbox:
        server = self.stack.enter_context(BackgroundServer(create_spotler()))
        sandbox = SpotlerSandbox(server.url)
        self.stack.callback(sandbox.close)
        sandbox.set_clock(now)
        return sandbox

    def close_later(self, thing: AfasClient | SpotlerClient | Recorder) -> None:
        self.stack.callback(thing.close)


@pytest.fixture
def sandboxes() -> Iterator[Sandboxes]:
    with ExitStack() as stack:
        yield Sandboxes(stack)


class Expected(msgspec.Struct):
    """A GetConnector read independently of the producer: valid rows per page, rejected rows."""

    pages: list[list[ContactRecord]]
    rejected: dict[str, Rejection]
    keys: list[list[str]]  # every row's ContactId, per page

    @property
    def valid(self) -> dict[str, ContactRecord]:
        return {r.contact_id: r for page in self.pages for r in page}

    def batch_sizes(self, pages: slice = slice(None)) -> list[int]:
        """What a sink must enqueue for these pages: batches of 100 per page, the rest last."""
        sizes: list[int] = []
        for page in self.pages[pages]:
            full, rest = divmod(len(page), BATCH_SIZE)
            sizes += [BATCH_SIZE] * full + ([rest] if rest else [])
        return sizes

    def batches_of(self, pages: slice = slice(None)) -> int:
        return sum(math.ceil(len(page) / BATCH_SIZE) for page in self.pages[pages])


def read_afas(sandbox: AfasSandbox) -> Expected:
    """Every row of the GetConnector in the producer's pages, decoded as the sync core decodes it."""
    pages: list[list[ContactRecord]] = []
    rejected: dict[str, Rejection] = {}
    row_keys: list[list[str]] = []
    with sandbox.client() as client:
        for rows in client.iter_pages(GETCONNECTOR, key=MAPPING.keys.contact_id, page_size=PAGE_SIZE):
            row_keys.append([str(row[MAPPING.keys.contact_id]) for row in rows])
            page: list[ContactRecord] = []
            for row in rows:
                decoded = decode_row(row, MAPPING)
                if isinstance(decoded, ContactRecord):
                    page.append(decoded)
                else:
                    rejected[str(decoded.contact_id)] = decoded
            pages.append(page)
    return Expected(pages=pages, rejected=rejected, keys=row_keys)


def afas_producer(client: AfasClient, redis_client: redis.Redis, outbox: Outbox, clock: Clock,
                  **options: Any) -> AfasProducer:
    return AfasProducer(client, MAPPING, redis_client, outbox.sink(redis_client), getconnector=GETCONNECTOR,
                        clock=clock, **options)


def spotler_producer(spotler: SpotlerClient, afas: AfasClient, redis_client: redis.Redis, outbox: Outbox,
                     clock: Clock, **options: Any) -> SpotlerProducer:
    return SpotlerProducer(spotler, afas, MAPPING, redis_client, outbox.sink(redis_client),
                           getconnector=GETCONNECTOR, clock=clock, **options)


def applied(redis_client: redis.Redis, changes: list[ContactChange]) -> None:
    """What a Spotler worker records after a successful write of ``changes``."""
    Ordering(redis_client).commit("spotler", "", [
        CommitItem(write=ContactWrite(contact_id=c.contact_id, fields=field_writes(c),
                                      person=c.person_id or None, organisation=c.organisation_id or None))
        for c in changes
    ])


def states(redis_client: redis.Redis, contact_ids: list[str]) -> dict[str, ContactState | None]:
    return dict(zip(contact_ids, AgreedStore(redis_client).states(contact_ids), strict=True))


def _pending(redis_client: redis.Redis, table: str) -> set[str]:
    ids = list(AgreedStore(redis_client).ids())
    return {cid for cid, s in zip(ids, AgreedStore(redis_client).states(ids), strict=True)
            if s is not None and getattr(s, table)}


def pending_into_spotler(redis_client: redis.Redis) -> set[str]:
    """Contacts with a change noted as on its way to Spotler."""
    return _pending(redis_client, "ps")


def pending_into_afas(redis_client: redis.Redis) -> set[str]:
    """Contacts with a change noted as on its way to AFAS."""
    return _pending(redis_client, "pa")


def rejections(redis_client: redis.Redis, source: str) -> set[tuple[str | None, str, str]]:
    return {(r.contact_id, r.field, r.reason) for r in RejectionStore(redis_client).list(source=source)}
