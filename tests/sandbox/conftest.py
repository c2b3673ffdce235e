"""Sandbox fixtures shared by the test modules of this folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import SpotlerApp, create_app


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[SpotlerApp, str]]:
    """A Spotler sandbox on a free port, one per test module (tests reset it)."""
    app = create_app()
    with BackgroundServer(app) as server:
        yield app, server.url
