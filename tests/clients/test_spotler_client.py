"""The Spotler client against a stub transport: signing, bodies, feeds, errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, unquote

import httpx
import pytest
from clients_stub import Stub, json_reply

from connector.clients.spotler import SpotlerClient
from connector.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    RateLimited,
    RecordRejected,
    RetriableError,
)
from connector.schemas.spotler import Bounce, Contact, Permission
from connector.settings import Secret

BASE = "https://restapi.mailplus.nl/integrationservice-1.1.0"
KEY = "consumer-key"
SECRET = "s3cr&t+/="
START = datetime(2024, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
END = datetime(2024, 3, 1, 13, 0, tzinfo=UTC)


def _enc(text: str) -> str:
    return quote(text, safe="~-._")


def signature_ok(request: httpx.Request, secret: str = SECRET) -> bool:
    """RFC 5849 HMAC-SHA1, computed here independently of oauthlib."""
    header = request.headers["Authorization"]
    assert header.startswith("OAuth ")
    oauth = {k: unquote(v) for k, v in re.findall(r'(\w+)="([^"]*)"', header)}
    signature = oauth.pop("oauth_signature")
    assert oauth["oauth_consumer_key"] == KEY
    assert oauth["oauth_signature_method"] == "HMAC-SHA1"
    assert oauth["oauth_version"] == "1.0"
    assert "oauth_token" not in oauth
    query = parse_qsl(request.url.query.decode(), keep_blank_values=True)
    pairs = sorted((_enc(k), _enc(v)) for k, v in [*oauth.items(), *query])
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    url = request.url
    port = "" if url.port in (None, 80, 443) else f":{url.port}"
    path = url.raw_path.split(b"?")[0].decode()
    base_url = f"{url.scheme}://{url.host}{port}{path}"
    base_string = "&".join([request.method, _enc(base_url), _enc(normalized)])
    digest = hmac.new(f"{_enc(secret)}&".encode(), base_string.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(signature, base64.b64encode(digest).decode())


def client(stub: Stub) -> SpotlerClient:
    return SpotlerClient(BASE, KEY, Secret(SECRET), transport=stub.transport)


def contact_json(external_id: str, last_changed: int = 1_709_294_400_000) -> dict[str, object]:
    return {
        "externalId": external_id,
        "created": 1_709_290_000_000,
        "encryptedId": "enc" + external_id,
        "testGroup": False,
        "lastChanged": last_changed,
        "temporary": False,
        "properties": {
            "email": f"{external_id}@example.nl",
            "permissions": [{"bit": 1, "enabled": True, "description": "Nieuwsbrief"}],
        },
        "channels": [{"name": "EMAIL", "value": True}],
    }


def test_every_request_is_signed_query_included() -> None:
    stub = Stub(json_reply(200, []))
    with client(stub) as spotler:
        list(spotler.iter_updates(START, END, page_size=50))
    request = stub.last
    assert signature_ok(request)
    assert not signature_ok(request, secret="other")
    assert request.headers["Accept"] == "application/json"
    assert "Content-Type" not in request.headers
    raw_query = request.url.query.decode()
    assert "fromDate=2024-03-01T12%3A00%3A00%2B01%3A00" in raw_query
    assert dict(request.url.params) == {
        "fromDate": "2024-03-01T12:00:00+01:00",
        "toDate": "2024-03-01T13:00:00+00:00",
        "after": "0",
        "pageSize": "50",
    }


def test_the_secret_never_shows_in_a_repr() -> None:
    spotler = SpotlerClient(BASE, KEY, SECRET)
    assert SECRET not in repr(spotler)
    assert SECRET not in repr(spotler._signer)
    spotler.close()


def test_upsert_posts_update_true_purge_false_without_read_only_fields() -> None:
    stub = Stub(httpx.Response(204))
    contact = Contact("42", {"email": "a@example.nl"}, created=1, encryptedId="x", temporary=False)
    contact.set_permissions({1: False, 4: True})
    with client(stub) as spotler:
        spotler.upsert(contact)
    request = stub.last
    assert request.method == "POST"
    assert request.url.path.endswith("/integrationservice-1.1.0/contact")
    assert request.headers["Content-Type"] == "application/json"
    assert signature_ok(request)
    assert json.loads(request.content) == {
        "update": True,
        "purge": False,
        "contact": {
            "externalId": "42",
            "properties": {
                "email": "a@example.nl",
                "permissions": [{"bit": 1, "enabled": False}, {"bit": 4, "enabled": True}],
            },
        },
    }


def test_upsert_many_returns_the_per_contact_codes() -> None:
    results = [
        {"externalId": "1", "code": "OK", "message": None},
        {"externalId": "2", "code": "PROPERTY_INVALID", "message": "Email nope@x is invalid"},
    ]
    stub = Stub(json_reply(200, results))
    with client(stub) as spotler:
        got = spotler.upsert_many([Contact("1"), Contact("2", {"email": "nope"})])
    assert [(r.externalId, r.code, r.ok) for r in got] == [
        ("1", "OK", True),
        ("2", "PROPERTY_INVALID", False),
    ]
    assert got[1].message == "Email <email> is invalid"
    body = json.loads(stub.last.content)
    assert body["update"] is True
    assert body["purge"] is False
    assert [c["externalId"] for c in body["contacts"]] == ["1", "2"]
    assert stub.last.url.path.endswith("/contact/list")


def test_upsert_many_limits() -> None:
    stub = Stub(httpx.Response(200))
    with client(stub) as spotler:
        assert spotler.upsert_many([]) == []
        with pytest.raises(ValueError, match="at most 100"):
            spotler.upsert_many([Contact(str(i)) for i in range(101)])
        assert [r.code for r in spotler.upsert_many([Contact("1")])] == ["OK"]
    assert len(stub.requests) == 1


def test_update_puts_to_the_contact_path() -> None:
    stub = Stub(httpx.Response(204))
    with client(stub) as spotler:
        spotler.update("a b/1", Contact("", {"firstName": "Jan"}))
        with pytest.raises(ValueError, match="differs"):
            spotler.update("1", Contact("2"))
    request = stub.last
    assert request.method == "PUT"
    assert request.url.raw_path == b"/integrationservice-1.1.0/contact/a%20b%2F1"
    assert json.loads(request.content)["contact"]["externalId"] == "a b/1"
    assert signature_ok(request)


def test_get_reads_a_contact_and_none_when_not_found() -> None:
    stub = Stub(
        json_reply(200, contact_json("7")),
        json_reply(404, {"errorType": "CONTACT_NOT_FOUND", "message": "Given contact not found"}),
    )
    with client(stub) as spotler:
        found = spotler.get("7")
        assert spotler.get("8") is None
    assert found is not None
    assert found.externalId == "7"
    assert found.permissions() == {1: True}
    assert found.email_reachable is True
    assert "example" not in repr(found)


def test_a_404_that_is_not_an_unknown_contact_is_fatal() -> None:
    with client(Stub(httpx.Response(404))) as spotler, pytest.raises(FatalError):
        spotler.get("7")


def feed(items: list[dict[str, object]], stamp: str = "lastChanged") -> Stub:
    """A consistent feed at the HTTP edge: the window filters, ``after``/``pageSize`` slice."""

    def reply(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        lo = datetime.fromisoformat(params["fromDate"]).timestamp() * 1000
        hi = datetime.fromisoformat(params["toDate"]).timestamp() * 1000
        after, size = int(params["after"]), int(params["pageSize"])
        inside = [i for i in items if lo <= _ms(i[stamp]) <= hi]
        return json_reply(200, {"paging": {}, "contacts": inside[after : after + size]})

    return Stub(reply)


def _ms(value: object) -> int:
    stamp = value if isinstance(value, int) else 0
    return stamp * 1000 if stamp < 10**11 else stamp


def test_a_window_with_fewer_items_than_a_page_costs_one_request() -> None:
    stub = feed([contact_json(str(i)) for i in range(3)])
    with client(stub) as spotler:
        got = [c.externalId for c in spotler.iter_updates(START, END, page_size=4) if isinstance(c, Contact)]
    assert got == ["0", "1", "2"]
    assert [(r.url.params["after"], r.url.params["pageSize"]) for r in stub.requests] == [("0", "4")]


def test_a_full_page_splits_the_window_and_each_item_comes_once() -> None:
    base = int(START.timestamp()) * 1000
    items = [contact_json(str(i), last_changed=base + i * 60_000) for i in range(50)]
    stub = feed(items)
    with client(stub) as spotler:
        got = [c for c in spotler.iter_updates(START, END, page_size=10) if isinstance(c, Contact)]
    assert sorted(c.externalId for c in got) == sorted(str(i) for i in range(50))
    assert len(got) == 50  # items on a shared boundary second came twice, yielded once
    assert all(r.url.params["after"] == "0" for r in stub.requests)
    assert all(signature_ok(r) for r in stub.requests)
    windows = {(r.url.params["fromDate"], r.url.params["toDate"]) for r in stub.requests}
    assert ("2024-03-01T12:00:00+01:00", "2024-03-01T13:00:00+00:00") in windows
    assert len(windows) == len(stub.requests)


def test_a_page_that_only_looks_sorted_misleads_nothing() -> None:
    base = int(START.timestamp()) * 1000
    late = [contact_json(f"late{i}", last_changed=base + (50 + i) * 60_000) for i in range(10)]
    early = [contact_json(f"early{i}", last_changed=base + i * 60_000) for i in range(40)]
    stub = feed(late + early)  # the first page is in stamp order, the feed is not
    with client(stub) as spotler:
        got = [c.externalId for c in spotler.iter_updates(START, END, page_size=10) if isinstance(c, Contact)]
    assert sorted(got) == sorted(str(c["externalId"]) for c in late + early)


def test_updates_feed_accepts_the_bare_array_and_seconds() -> None:
    stub = Stub(json_reply(200, [contact_json("1", last_changed=1_709_294_400)]))
    with client(stub) as spotler:
        got = list(spotler.iter_updates(START, END, page_size=2))
    assert [c.lastChanged for c in got if isinstance(c, Contact)] == [1_709_294_400_000]
    assert isinstance(got[0], Contact)
    assert got[0].created == 1_709_290_000_000
    assert len(stub.requests) == 1


def test_feed_page_size_is_capped_and_windows_must_be_aware() -> None:
    stub = Stub(json_reply(200, {"contacts": []}))
    with client(stub) as spotler:
        assert list(spotler.iter_updates(START, END, page_size=50_000)) == []
        with pytest.raises(ValueError, match="timezone-aware"):
            spotler.iter_updates(datetime(2024, 1, 1), END)
        with pytest.raises(ValueError, match="timezone-aware"):
            spotler.iter_bounces(START, datetime(2024, 1, 1))
    assert stub.last.url.params["pageSize"] == "10000"


@pytest.mark.parametrize("body", [b"<xml/>", b'"contacts"', b'{"contacts": null}', b"42"])
def test_a_page_that_is_neither_shape_is_fatal(body: bytes) -> None:
    stub = Stub(httpx.Response(200, content=body, headers={"Content-Type": "application/json"}))
    with client(stub) as spotler, pytest.raises(FatalError, match="unexpected answer") as info:
        list(spotler.iter_updates(START, END))
    assert info.value.status == 200


def test_bounces_feed_in_both_shapes() -> None:
    bounce = {
        "date": 1_709_294_400,
        "type": "HARDBOUNCE",
        "contact": contact_json("9"),
        "encryptedActId": "a",
    }
    stub = Stub(
        json_reply(200, {"paging": {}, "bounces": [bounce, {**bounce, "type": "SOFTBOUNCE"}]}),
        json_reply(200, [bounce]),
    )
    with client(stub) as spotler:
        first = [b for b in spotler.iter_bounces(START, END, page_size=5) if isinstance(b, Bounce)]
        second = [b for b in spotler.iter_bounces(START, END, page_size=5) if isinstance(b, Bounce)]
    assert [(b.type, b.hard, b.date) for b in first] == [
        ("HARDBOUNCE", True, 1_709_294_400_000),
        ("SOFTBOUNCE", False, 1_709_294_400_000),
    ]
    assert [b.contact.externalId for b in second] == ["9"]
    assert len(stub.requests) == 2
    assert all(r.url.path.endswith("/contact/bounces/list") for r in stub.requests)


def test_properties_search_and_anonymize() -> None:
    catalogue = [
        {"name": "email", "description": "E-mail", "type": "email"},
        {
            "name": "permissions",
            "description": "Permissies",
            "type": "set",
            "entries": [{"bit": 1, "description": "Nieuwsbrief", "rank": 1}],
        },
    ]
    stub = Stub(
        json_reply(200, catalogue),
        json_reply(200, {"paging": {}, "contacts": [contact_json("3")]}),
        httpx.Response(204),
    )
    with client(stub) as spotler:
        props = spotler.properties()
        found = spotler.search("email=a+b@example.nl", page_size=10)
        spotler.anonymize("3")
    assert props[1].entries is not None
    assert props[1].entries[0].bit == 1
    assert [c.externalId for c in found] == ["3"]
    search = stub.requests[1]
    assert search.url.params["MPSearchQuery"] == "email=a+b@example.nl"
    assert signature_ok(search)
    anonymize = stub.requests[2]
    assert anonymize.method == "PUT"
    assert anonymize.url.path.endswith("/contact/anonymize/3")
    assert anonymize.content == b""
    assert "Content-Type" not in anonymize.headers


def fail(*replies: httpx.Response | Exception) -> ConnectorError:
    with client(Stub(*replies)) as spotler, pytest.raises(ConnectorError) as info:
        spotler.upsert(Contact("5", {"email": "who@example.nl"}))
    text = str(info.value) + (info.value.detail or "")
    assert SECRET not in text
    assert "who@example" not in text
    return info.value


def test_an_e_mail_address_as_external_id_stays_out_of_messages() -> None:
    reply = json_reply(
        404, {"errorType": "CONTACT_NOT_FOUND", "message": "Given contact not found"}
    )
    with client(Stub(reply)) as spotler, pytest.raises(RecordRejected) as info:
        spotler.update("who@example.nl", Contact("who@example.nl"))
    assert "example" not in str(info.value)
    assert "<email>" in str(info.value)


def test_400_rejects_the_record_with_its_error_type() -> None:
    error = fail(
        json_reply(
            400, {"errorType": "INVALID_PROPERTY", "message": "Email is invalid: who@example.nl"}
        )
    )
    assert isinstance(error, RecordRejected)
    assert error.code == "INVALID_PROPERTY"
    assert error.key == "5"
    assert error.status == 400
    assert "<email>" in str(error)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials(status: int) -> None:
    error = fail(json_reply(status, {"errorType": "NOT_AUTHORIZED", "message": "no"}))
    assert isinstance(error, AuthError)
    assert error.status == status


def test_429_and_5xx() -> None:
    limited = fail(httpx.Response(429, headers={"Retry-After": "2"}))
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 2
    for status in (500, 502, 503, 504):
        error = fail(json_reply(status, {"errorType": "BACKEND_EXCEPTION", "message": "oops"}))
        assert type(error) is RetriableError
        assert error.status == status


def test_transport_failures_are_retriable() -> None:
    assert type(fail(httpx.ConnectError("refused"))) is RetriableError
    assert type(fail(httpx.ReadTimeout("slow"))) is RetriableError


def test_contact_permission_helpers_merge_per_bit() -> None:
    contact = Contact("1", {"permissions": [{"bit": 1, "enabled": True, "description": "N"}]})
    contact.set_permissions({2: True})
    contact.set_permissions({1: False})
    assert contact.permissions() == {1: False, 2: True}
    assert contact.properties["permissions"] == [Permission(1, False), Permission(2, True)]
    assert Contact("2").permissions() == {}


@pytest.mark.parametrize("enabled", ["false", "true", "0", 1, 0, None])
def test_only_a_real_boolean_counts_as_consent(enabled: object) -> None:
    contact = Contact("1", {"permissions": [{"bit": 1, "enabled": enabled}, {"bit": 2, "enabled": True}]})
    assert contact.permissions() == {2: True}
    assert Contact("2", {"permissions": [{"bit": "1", "enabled": True}]}).permissions() == {}
    assert Contact("3", {"permissions": [{"bit": True, "enabled": True}]}).permissions() == {}
