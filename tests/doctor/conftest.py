"""Doctor fixtures: both sandboxes over real HTTP, reset for every test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.doctor.systems import CONTACTS, GETCONNECTOR, Systems

from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.app import create_app as afas_app
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET
from connector.sandbox.spotler.app import create_app as spotler_app


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[BackgroundServer, BackgroundServer]]:
    with BackgroundServer(afas_app(CONTACTS, 1, DEFAULT_TOKEN, edge_cases=False)) as afas_server, BackgroundServer(
        spotler_app()
    ) as spotler_server:
        yield afas_server, spotler_server


@pytest.fixture
def systems(servers: tuple[BackgroundServer, BackgroundServer]) -> Iterator[Systems]:
    """Both sandboxes freshly reset (clean seed data, default grants and catalogue)."""
    afas_server, spotler_server = servers
    with httpx.Client(base_url=f"{afas_server.url}/_sandbox", timeout=30) as afas, httpx.Client(
        base_url=f"{spotler_server.url}/_sandbox", timeout=30
    ) as spotler:
        afas.post("/reset", json={"contacts": CONTACTS, "seed": 1, "edge_cases": False}).raise_for_status()
        spotler.post("/reset", json={}).raise_for_status()
        env = {
            "AFAS_BASE_URL": f"{afas_server.url}/ProfitRestServices",
            "AFAS_TOKEN": DEFAULT_TOKEN,
            "AFAS_GETCONNECTOR": GETCONNECTOR,
            "SPOTLER_BASE_URL": f"{spotler_server.url}/integrationservice-1.1.0",
            "SPOTLER_KEY": DEFAULT_KEY,
            "SPOTLER_SECRET": DEFAULT_SECRET,
            "HTTP_TIMEOUT_S": "30",
        }
        yield Systems(afas_server.url, spotler_server.url, afas, spotler, env)
