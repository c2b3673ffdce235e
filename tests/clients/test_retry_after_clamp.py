"""Odd Retry-After values never raise: inf, 1e400, huge → the 7-day cap; nan → absent; negative → 0."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from clients_stub import Stub

from connector.clients.afas import AfasClient
from connector.clients.http import MAX_RETRY_AFTER_S, clamp_retry_after, retry_after_seconds
from connector.clients.spotler import SpotlerClient
from connector.errors import ConnectorError, RateLimited, RetriableError
from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.app import create_app as create_afas
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET
from connector.sandbox.spotler.app import create_app as create_spotler

WEEK = MAX_RETRY_AFTER_S
assert WEEK == 7 * 86_400

# (what the server sends, the wait the connector takes from it)
SPELLINGS = [
    ("inf", WEEK),
    ("Infinity", WEEK),
    ("-inf", 0.0),
    ("1e400", WEEK),
    ("1e306", WEEK),
    ("99999999999999999999", WEEK),
    ("nan", None),
    ("NaN", None),
    ("-3", 0.0),
    ("Fri, 31 Dec 9999 23:59:59 GMT", WEEK),
    ("Mon, 01 Jan 2001 00:00:00 GMT", 0.0),
    ("12", 12.0),
    ("soon", None),
]


@pytest.mark.parametrize(("header", "expected"), SPELLINGS)
def test_retry_after_seconds_clamps_every_spelling(header: str, expected: float | None) -> None:
    assert retry_after_seconds(header) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (float("inf"), WEEK), (float("-inf"), 0.0), (float("nan"), None), (1e306, WEEK), (-1.0, 0.0), (None, None),
    (3.5, 3.5),
])
def test_numbers_are_clamped_too(value: float | None, expected: float | None) -> None:
    assert clamp_retry_after(value) == expected
    assert retry_after_seconds(value) == expected


def _afas_503(content: bytes, header: str | None = None) -> ConnectorError:
    headers = {"Content-Type": "application/json", **({"Retry-After": header} if header else {})}
    afas = AfasClient("https://1.rest.afas.online/ProfitRestServices", DEFAULT_TOKEN,
                      transport=Stub(httpx.Response(503, content=content, headers=headers)).transport)
    with afas, pytest.raises(ConnectorError) as info:
        afas.get_page("Spotler_Contacts", order_by=["ContactId"])
    return info.value


@pytest.mark.parametrize(("value", "expected"), [("1e306", WEEK), ("1e400", WEEK), ("-20", 0.0), ("7200", 7200.0)])
def test_the_retry_after_of_an_afas_503_body_is_clamped(value: str, expected: float) -> None:
    body = b'{"error": {"code": "503", "message": "Onderhoud"}, "retry_after": ' + value.encode() + b"}"
    error = _afas_503(body)
    assert type(error) is RetriableError
    assert error.retry_after == expected


@pytest.fixture(scope="module")
def afas() -> Iterator[tuple[BackgroundServer, httpx.Client]]:
    with BackgroundServer(create_afas(contacts=5, seed=1, token=DEFAULT_TOKEN)) as server, \
            httpx.Client(base_url=f"{server.url}/_sandbox", timeout=10) as control:
        yield server, control


@pytest.fixture(scope="module")
def spotler() -> Iterator[tuple[BackgroundServer, httpx.Client]]:
    with BackgroundServer(create_spotler()) as server, \
            httpx.Client(base_url=f"{server.url}/_sandbox", timeout=10) as control:
        yield server, control


@pytest.mark.parametrize(("header", "expected"), SPELLINGS)
def test_the_afas_client_against_the_sandbox_never_raises_on_retry_after(
    afas: tuple[BackgroundServer, httpx.Client], header: str, expected: float | None
) -> None:
    server, control = afas
    control.put("/faults", json={"rate_limit_rate": 1.0, "retry_after_text": header}).raise_for_status()
    try:
        with AfasClient(f"{server.url}/ProfitRestServices", DEFAULT_TOKEN, timeout=10) as client, \
                pytest.raises(RateLimited) as limited:
            client.get_page("Spotler_Contacts", order_by=["ContactId"], take=1)
        assert limited.value.retry_after == expected
        control.put("/faults", json={"maintenance": True, "retry_after_text": header}).raise_for_status()
        with AfasClient(f"{server.url}/ProfitRestServices", DEFAULT_TOKEN, timeout=10) as client, \
                pytest.raises(RetriableError) as down:
            client.get_page("Spotler_Contacts", order_by=["ContactId"], take=1)
        # The sandbox's maintenance body says retry_after 60, which AFAS's body takes precedence for.
        assert down.value.retry_after == 60
    finally:
        control.put("/faults", json={}).raise_for_status()


@pytest.mark.parametrize(("header", "expected"), SPELLINGS)
def test_the_spotler_client_against_the_sandbox_never_raises_on_retry_after(
    spotler: tuple[BackgroundServer, httpx.Client], header: str, expected: float | None
) -> None:
    server, control = spotler
    control.put("/faults", json={"rate_limit_rate": 1.0, "retry_after_text": header}).raise_for_status()
    try:
        with SpotlerClient(f"{server.url}/integrationservice-1.1.0", DEFAULT_KEY, DEFAULT_SECRET,
                           timeout=10) as client, pytest.raises(RateLimited) as limited:
            client.properties()
        assert limited.value.retry_after == expected
    finally:
        control.put("/faults", json={}).raise_for_status()
