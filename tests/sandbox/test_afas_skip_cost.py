"""The AFAS sandbox's deep-skip model over HTTP: a page waits for its skip, as Profit's do."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from connector.cli.sandbox import sandbox as sandbox_cli
from connector.sandbox.afas.app import DEFAULT_TOKEN, SKIP_DELAY_HEADER, create_app
from connector.sandbox.afas.skip_cost import DEFAULT_MS_PER_100K, SkipCost
from connector.sandbox.afas.testing import auth_header
from connector.sandbox.server import BackgroundServer

CONNECTOR = "/connectors/Spotler_Contacts"


class Sandbox:
    def __init__(self, url: str) -> None:
        self.api = httpx.Client(base_url=f"{url}/ProfitRestServices", headers=auth_header(), timeout=30)
        self.control = httpx.Client(base_url=f"{url}/_sandbox", timeout=30)

    def page(self, skip: int, take: int = 5) -> httpx.Response:
        response = self.api.get(CONNECTOR, params={"skip": skip, "take": take, "orderbyfieldids": "ContactId"})
        assert response.status_code == 200
        return response

    def curve(self, **curve: float) -> None:
        assert self.control.put("/skip-cost", json=curve).status_code == 200


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with BackgroundServer(create_app(contacts=20, seed=1, token=DEFAULT_TOKEN)) as server:
        yield Sandbox(server.url)


def waited_ms(response: httpx.Response) -> int:
    return int(response.headers[SKIP_DELAY_HEADER])


def test_the_model_is_on_by_default_at_3_s_per_100000_rows(sandbox: Sandbox) -> None:
    assert sandbox.control.get("/skip-cost").json()["ms_per_100k"] == DEFAULT_MS_PER_100K == 3000
    assert waited_ms(sandbox.page(0)) == 0
    assert waited_ms(sandbox.page(10)) == 0  # 0.3 ms
    assert waited_ms(sandbox.page(1000)) == 30
    assert SkipCost().delay_s(100_000) == 3.0
    assert SkipCost().delay_s(200_000) == 6.0
    assert SkipCost().delay_s(10**12) == 900.0  # AFAS's server timeout
    # The command line starts the sandbox with it on, too.
    option = next(p for p in sandbox_cli.commands["afas"].params if p.name == "skip_ms_per_100k")
    assert option.default == DEFAULT_MS_PER_100K
    assert "--skip-ms-per-100k" in CliRunner().invoke(sandbox_cli, ["afas", "--help"]).output


def test_a_deep_page_waits_for_its_skip_even_past_the_last_row(sandbox: Sandbox) -> None:
    sandbox.curve(ms_per_100k=150)  # 300 ms at skip 200,000: cheap to wait for
    began = time.perf_counter()
    shallow = sandbox.page(0)
    shallow_s = time.perf_counter() - began
    began = time.perf_counter()
    deep = sandbox.page(200_000)
    deep_s = time.perf_counter() - began

    assert len(shallow.json()["rows"]) == 5
    assert deep.json() == {"skip": 200_000, "take": 5, "rows": []}  # 20 contacts: past the last row
    assert (waited_ms(shallow), waited_ms(sandbox.page(100_000)), waited_ms(deep)) == (0, 150, 300)
    assert deep_s >= 0.3 > shallow_s
    # "get all" (skip -1) skips nothing.
    everything = sandbox.api.get(CONNECTOR, params={"skip": -1, "take": -1})
    assert (waited_ms(everything), len(everything.json()["rows"])) == (0, 20)


def test_a_curve_of_0_turns_the_model_off_and_a_reset_restores_the_starting_curve() -> None:
    with BackgroundServer(
        create_app(contacts=5, seed=1, token=DEFAULT_TOKEN, skip_cost=SkipCost(ms_per_100k=0))
    ) as server:
        sandbox = Sandbox(server.url)
        assert waited_ms(sandbox.page(10**9)) == 0
        sandbox.curve(ms_per_100k=50)
        assert waited_ms(sandbox.page(100_000)) == 50
        assert sandbox.control.put("/skip-cost", json={"ms_per_100k": -1}).status_code == 400
        assert sandbox.control.put("/skip-cost", json={"per_row": 1}).status_code == 400
        assert sandbox.control.post("/reset", json={"contacts": 5}).status_code == 200
        assert sandbox.control.get("/skip-cost").json()["ms_per_100k"] == 0
        assert waited_ms(sandbox.page(10**9)) == 0


def test_a_waiting_deep_page_holds_up_no_other_request(sandbox: Sandbox) -> None:
    sandbox.curve(ms_per_100k=3000)  # 3 s at skip 100,000
    answered: list[int] = []
    slow = threading.Thread(target=lambda: answered.append(waited_ms(sandbox.page(100_000))))
    slow.start()
    deadline = time.monotonic() + 10
    while sandbox.control.get("/requests").json()["in_flight"] < 1:
        assert time.monotonic() < deadline, "the deep page never reached the sandbox"
        time.sleep(0.01)

    began = time.perf_counter()
    assert len(sandbox.page(0).json()["rows"]) == 5
    assert sandbox.api.get("/metainfo").status_code == 200
    assert time.perf_counter() - began < 1.5
    assert slow.is_alive()
    assert answered == []
    slow.join()
    assert answered == [3000]
