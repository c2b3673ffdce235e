"""Every AFAS call runs inside the client's gate; with the shared cap, reads and writes together stay under it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis
from clients_stub import Stub, json_reply

from connector import runtime
from connector.clients.afas import AfasClient
from connector.errors import ConnectorError
from connector.sandbox.afas.app import DEFAULT_TOKEN, AfasSandbox
from connector.sandbox.afas.testing import running_sandbox
from connector.sandbox.faults import Faults
from connector.sandbox.server import BackgroundServer
from connector.settings import Secret, Settings

BASE = "https://12345.rest.afas.online/ProfitRestServices"
CAP = 3
THREADS = 8


def test_every_kind_of_call_runs_inside_the_gate() -> None:
    depth = 0
    entered = 0

    @contextmanager
    def gate() -> Iterator[None]:
        nonlocal depth, entered
        depth += 1
        entered += 1
        try:
            yield
        finally:
            depth -= 1

    def answer(request: httpx.Request) -> httpx.Response:
        assert depth == 1, f"{request.method} {request.url.path} ran outside the gate"
        if request.method == "PUT":
            return httpx.Response(201)
        if "metainfo" in request.url.path:
            return json_reply(200, {"name": "x", "fields": [], "updateConnectors": [], "getConnectors": []})
        return json_reply(200, {"skip": 0, "take": 1, "rows": [{"ContactId": 1}]})

    stub = Stub(answer)
    with AfasClient(BASE, "x" * 64, transport=stub.transport, gate=gate) as afas:
        afas.get_page("C")
        list(afas.iter_pages("C", key="ContactId", page_size=5))
        afas.rows_by_ids("C", key="ContactId", ids=["1"])
        afas.metainfo()
        afas.getconnector_meta("C")
        afas.update_meta("KnContact")
        afas.update_contact({"BcCoOga": "1", "BcCoPer": "2", "Bl": True})
    assert entered == len(stub.requests) == 7
    assert depth == 0


@pytest.fixture
def sandbox() -> Iterator[tuple[BackgroundServer, AfasSandbox]]:
    with running_sandbox(contacts=60, seed=3) as running:
        yield running


def settings_for(server: BackgroundServer) -> Settings:
    return Settings(
        afas_base_url=f"{server.url}/ProfitRestServices",
        afas_token=Secret(DEFAULT_TOKEN),
        afas_max_parallel=CAP,
        http_timeout_s=10,
    )


def hammer(clients: list[AfasClient]) -> list[BaseException]:
    """Every client reads (walk, lookup, metainfo) and writes at once, from its own thread."""
    start = threading.Barrier(len(clients))
    failures: list[BaseException] = []

    def work(afas: AfasClient) -> None:
        start.wait()
        try:
            for _ in range(2):
                first = next(afas.iter_pages("Spotler_Contacts", key="ContactId", page_size=25))[0]
                afas.rows_by_ids("Spotler_Contacts", key="ContactId", ids=["1", "2", "3"])
                afas.metainfo()
                if first["PersonNo"] is not None:
                    afas.update_person({"MatchPer": "0", "BcCo": first["PersonNo"], "FiNm": "Kim"})
        except ConnectorError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def run_against(
    sandbox: tuple[BackgroundServer, AfasSandbox], build: Callable[[], AfasClient]
) -> tuple[list[BaseException], dict[str, Any]]:
    _server, app = sandbox
    app.set_faults(Faults(max_parallel=CAP, latency_ms=60))
    app.reset_stats()
    clients = [build() for _ in range(THREADS)]
    try:
        failures = hammer(clients)
    finally:
        for client in clients:
            client.close()
    return failures, app.stats()


def test_clients_sharing_the_cap_never_exceed_it(
    sandbox: tuple[BackgroundServer, AfasSandbox], redis_client: redis.Redis
) -> None:
    settings = settings_for(sandbox[0])
    failures, stats = run_against(sandbox, lambda: runtime.afas_client(settings, redis_client))
    assert failures == []
    assert stats["total"] >= THREADS * 2 * 4
    assert stats["max_in_flight"] <= CAP
    assert set(stats["statuses"]) <= {"200", "201"}


def test_without_the_cap_the_same_load_is_refused(sandbox: tuple[BackgroundServer, AfasSandbox]) -> None:
    """The sandbox's limit is real: the same threads without a shared gate go over it."""
    server = sandbox[0]
    failures, stats = run_against(
        sandbox, lambda: AfasClient(f"{server.url}/ProfitRestServices", DEFAULT_TOKEN, timeout=10)
    )
    assert stats["max_in_flight"] > CAP
    assert failures
    assert stats["statuses"].get("500", 0) > 0
