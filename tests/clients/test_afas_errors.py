"""AFAS failures become the connector's error taxonomy, without secrets or e-mail addresses."""

from __future__ import annotations

import base64

import httpx
import pytest
from clients_stub import Stub, json_reply

from connector.clients.afas import AfasClient
from connector.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    RateLimited,
    RecordRejected,
    RetriableError,
)

BASE = "https://12345.rest.afas.online/ProfitRestServices"
DATA = "F" * 64
REF = "B8213AF1C3C54E579686406A8DE71C6C"


def fail_update(*replies: httpx.Response | Exception) -> ConnectorError:
    afas = AfasClient(BASE, DATA, transport=Stub(*replies).transport)
    with afas, pytest.raises(ConnectorError) as info:
        afas.update_contact({"BcCoOga": "1000010", "BcCoPer": "1000130", "EmAd": "x@example.nl"})
    assert DATA not in str(info.value)
    assert "@example" not in str(info.value)
    assert "@example" not in (info.value.detail or "")
    return info.value


def fail_get(*replies: httpx.Response | Exception) -> ConnectorError:
    afas = AfasClient(BASE, DATA, transport=Stub(*replies).transport)
    with afas, pytest.raises(ConnectorError) as info:
        afas.get_page("Spotler_Contacts", order_by=["ContactId"])
    assert DATA not in str(info.value)
    return info.value


def profit_error(message: str, number: int = -2147220469) -> httpx.Response:
    return json_reply(
        500, {"externalMessage": message, "errorNumber": number, "profitLogReference": REF}
    )


def test_a_validation_failure_rejects_the_record_with_its_log_reference() -> None:
    error = fail_update(profit_error("The entered value for 'Employee' does not exist."))
    assert type(error) is RecordRejected
    assert error.status == 500
    assert error.code == "-2147220469"
    assert error.key == "BcCoOga 1000010, BcCoPer 1000130"
    assert error.detail is not None
    assert "does not exist" in error.detail
    assert REF in error.detail
    assert "KnContact" in str(error)
    assert "500" in str(error)


@pytest.mark.parametrize(
    "message",
    [
        "Record is locked by another user",
        "Het record is vergrendeld.",
        "De boekingslaag is in gebruik door een andere gebruiker",
        "De maximale tijdsduur voor het uitvoeren van de opdracht is verstreken.",
        "The maximum duration for performing the assignment has been exceeded.",
        "Too many parallel requests",
        "An unexpected error has occurred.",
    ],
)
def test_locks_timeouts_and_unexpected_errors_are_retriable(message: str) -> None:
    error = fail_update(profit_error(message, -2147180999))
    assert type(error) is RetriableError
    assert error.status == 500
    assert error.detail is not None
    assert REF in error.detail


def test_a_connector_the_token_may_not_use_is_an_auth_error() -> None:
    error = fail_update(
        profit_error(
            "General message: Deze UpdateConnector wordt niet ondersteund of de gebruiker is "
            "niet geautoriseerd.",
            -2147180996,
        )
    )
    assert isinstance(error, AuthError)


def test_a_failed_read_is_fatal_but_not_a_record_rejection() -> None:
    error = fail_get(profit_error("Connector field 'Foo' not found", -2147180999))
    assert type(error) is FatalError


def test_a_500_without_a_body_is_retriable() -> None:
    assert type(fail_get(httpx.Response(500))) is RetriableError


def test_the_legacy_error_header_is_read_when_the_body_is_empty() -> None:
    header = base64.b64encode(b"Het record is vergrendeld").decode()
    error = fail_update(httpx.Response(500, headers={"X-PROFIT-ERROR": header}))
    assert type(error) is RetriableError
    assert "vergrendeld" in str(error)


def test_an_e_mail_address_in_afas_message_is_masked() -> None:
    error = fail_update(profit_error("E-mail 'x@example.nl' is ongeldig"))
    assert isinstance(error, RecordRejected)
    assert "<email>" in str(error)
    assert error.detail is not None
    assert "<email>" in error.detail


def test_maintenance_503_honours_retry_after_from_the_body() -> None:
    body = {
        "error": {"code": "503", "message": "Onderhoud, zie afasstatus.nl"},
        "retry_after": 7200,
    }
    error = fail_get(json_reply(503, body, headers={"Retry-After": "5"}))
    assert type(error) is RetriableError
    assert error.retry_after == 7200
    assert error.status == 503


def test_503_falls_back_to_the_retry_after_header() -> None:
    error = fail_get(httpx.Response(503, headers={"Retry-After": "30"}))
    assert isinstance(error, RetriableError)
    assert error.retry_after == 30


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials(status: int) -> None:
    error = fail_get(httpx.Response(status))
    assert isinstance(error, AuthError)
    assert error.status == status


def test_429_is_rate_limited_with_its_wait() -> None:
    error = fail_get(httpx.Response(429, headers={"Retry-After": "3"}))
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_are_retriable(status: int) -> None:
    error = fail_get(httpx.Response(status))
    assert type(error) is RetriableError
    assert error.status == status


@pytest.mark.parametrize("status", [400, 404, 413])
def test_other_client_errors_are_fatal(status: int) -> None:
    error = fail_get(httpx.Response(status))
    assert type(error) is FatalError
    assert error.status == status


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
)
def test_transport_failures_are_retriable(exc: Exception) -> None:
    error = fail_get(exc)
    assert type(error) is RetriableError
    assert error.status is None


def test_a_success_body_that_is_not_a_page_is_fatal() -> None:
    error = fail_get(httpx.Response(200, content=b"<html>login</html>"))
    assert type(error) is FatalError
