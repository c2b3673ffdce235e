"""Helpers for tests and benchmarks that run the AFAS sandbox in-process."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager

from connector.sandbox.afas.app import DEFAULT_TOKEN, AfasSandbox, create_app
from connector.sandbox.server import BackgroundServer

__all__ = ["auth_header", "running_sandbox"]


def auth_header(token: str = DEFAULT_TOKEN) -> dict[str, str]:
    """The ``Authorization`` header a client sends: AfasToken + base64 of the whole XML."""
    return {"Authorization": "AfasToken " + base64.b64encode(token.encode()).decode()}


@contextmanager
def running_sandbox(
    contacts: int = 100, seed: int = 1, *, edge_cases: bool = True, token: str = DEFAULT_TOKEN
) -> Iterator[tuple[BackgroundServer, AfasSandbox]]:
    """A seeded sandbox on a free port; yields (server, app). ``server.url`` has no path."""
    app = create_app(contacts=contacts, seed=seed, token=token, edge_cases=edge_cases)
    with BackgroundServer(app) as server:
        yield server, app
