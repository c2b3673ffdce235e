"""Injected faults in Profit's dialect: maintenance 503, 500s, timeouts, the parallel-call cap."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from connector.sandbox.afas.testing import auth_header, running_sandbox


class Sandbox:
    def __init__(self, url: str) -> None:
        self.url = url
        self.api = httpx.Client(base_url=f"{url}/ProfitRestServices", headers=auth_header(), timeout=30)
        self.control = httpx.Client(base_url=f"{url}/_sandbox", timeout=30)

    def faults(self, **faults: object) -> None:
        assert self.control.put("/faults", json=faults).status_code == 200


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox(contacts=20, seed=1) as (server, _app):
        yield Sandbox(server.url)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_maintenance_is_a_503_with_retry_after(sandbox: Sandbox) -> None:
    sandbox.faults(maintenance=True, maintenance_retry_after_s=7200)
    response = sandbox.api.get("/connectors/Spotler_Contacts")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7200"
    body = response.json()
    assert body["retry_after"] == 7200
    assert body["error"]["code"] == "503"
    assert "afasstatus.nl" in body["error"]["message"]
    assert sandbox.control.get("/summary").status_code == 200  # the control API is never faulted
    sandbox.faults()
    assert sandbox.api.get("/connectors/Spotler_Contacts").status_code == 200


def test_injected_server_errors_carry_the_profit_body(sandbox: Sandbox) -> None:
    sandbox.faults(error_rate=1.0)
    response = sandbox.api.put("/connectors/KnContact", json={})
    assert response.status_code == 500
    body = response.json()
    assert body["externalMessage"] == "An unexpected error has occurred."
    assert isinstance(body["errorNumber"], int)
    assert len(body["profitLogReference"]) == 32
    sandbox.faults(error_rate=0.5, seed=3)
    statuses = {sandbox.api.get("/metainfo").status_code for _ in range(40)}
    assert statuses == {200, 500}


def test_a_timeout_leaves_the_client_waiting(sandbox: Sandbox) -> None:
    sandbox.faults(timeout_rate=1.0, timeout_s=1.5)
    with pytest.raises(httpx.ReadTimeout):
        sandbox.api.get("/metainfo", timeout=0.2)
    sandbox.faults()
    assert sandbox.api.get("/metainfo").status_code == 200


def test_over_the_parallel_cap_profit_answers_500(sandbox: Sandbox) -> None:
    sandbox.faults(max_parallel=2, latency_ms=3000)
    statuses: list[int] = []

    def slow_call() -> None:
        with httpx.Client(headers=auth_header(), timeout=30) as client:
            statuses.append(client.get(f"{sandbox.url}/ProfitRestServices/metainfo").status_code)

    threads = [threading.Thread(target=slow_call) for _ in range(2)]
    for thread in threads:
        thread.start()
    wait_for(lambda: sandbox.control.get("/requests").json()["in_flight"] == 2, "two calls in flight")
    sandbox.faults(max_parallel=2)  # the third call is refused at once, without latency
    busy = sandbox.api.get("/metainfo")
    assert busy.status_code == 500
    assert "too many parallel calls" in busy.json()["externalMessage"].lower()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200]
    stats = sandbox.control.get("/requests").json()
    assert stats["max_in_flight"] >= 3
    assert stats["statuses"]["500"] == 1
