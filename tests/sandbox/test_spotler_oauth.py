"""OAuth 1.0a one-legged: the Spotler sandbox accepts what real clients send, refuses the rest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterator
from typing import NamedTuple
from urllib.parse import quote, urlencode

import httpx
import pytest
import requests
from oauthlib.oauth1 import SIGNATURE_TYPE_AUTH_HEADER, SIGNATURE_TYPE_QUERY, Client
from requests_oauthlib import OAuth1

from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET, SpotlerApp, create_app
from connector.sandbox.spotler.oauth import OAuthVerifier, parse_authorization
from connector.sandbox.spotler.testing import SignedClient
from connector.settings import Secret

ODD_KEY = "odd key"
ODD_SECRET = "s3cr3t&+/= é~"  # every character pct() must encode in the signing key
PREFIX = "/integrationservice-1.1.0"


class Env(NamedTuple):
    app: SpotlerApp
    url: str  # server root

    @property
    def base(self) -> str:
        return self.url + PREFIX


@pytest.fixture(scope="module")
def running() -> Iterator[Env]:
    app = create_app(credentials={ODD_KEY: ODD_SECRET})
    with BackgroundServer(app) as server:
        yield Env(app, server.url)


@pytest.fixture
def env(running: Env) -> Env:
    httpx.post(running.url + "/_sandbox/reset").raise_for_status()
    return running


def pct(value: str) -> str:
    return quote(value, safe="~")


def rfc_signature(method: str, url: str, params: list[tuple[str, str]], secret: str) -> str:
    """RFC 5849 HMAC-SHA1 computed by hand (no oauthlib), like the PHP clients do."""
    normalized = "&".join(f"{k}={v}" for k, v in sorted((pct(k), pct(v)) for k, v in params))
    base = "&".join([method.upper(), pct(url), pct(normalized)])
    digest = hmac.new(f"{pct(secret)}&".encode(), base.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def oauth_params(key: str = DEFAULT_KEY, **extra: str) -> dict[str, str]:
    return {
        "oauth_consumer_key": key,
        "oauth_nonce": hashlib.md5(secrets.token_bytes(8)).hexdigest(),  # noqa: S324
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": str(int(time.time())),
        "oauth_version": "1.0",
        **extra,
    }


def raw_header(params: dict[str, str]) -> str:
    """The larsvg/steffjenl style: values not encoded, ``","`` separators, insertion order."""
    return "OAuth " + ",".join(f'{k}="{v}"' for k, v in params.items())


def encoded_header(params: dict[str, str]) -> str:
    """The Guzzle / oauth-1.0a style: values percent-encoded, ``", "`` separators, sorted."""
    return "OAuth " + ", ".join(f'{k}="{pct(v)}"' for k, v in sorted(params.items()))


def hand_signed(
    method: str, url: str, query: dict[str, str] | None = None, *, key: str = DEFAULT_KEY,
    secret: str = DEFAULT_SECRET, style: str = "raw", **extra: str,
) -> tuple[str, dict[str, str]]:
    """(full URL, headers) signed by hand."""
    query = query or {}
    params = oauth_params(key, **extra)
    signed = [*query.items(), *params.items()]
    params["oauth_signature"] = rfc_signature(method, url, signed, secret)
    unsorted = dict(reversed(params.items()))
    header = raw_header(unsorted) if style == "raw" else encoded_header(params)
    full = f"{url}?{urlencode(query, quote_via=quote)}" if query else url
    return full, {"Authorization": header, "Accept": "application/json"}


# --- accepted -------------------------------------------------------------------


def test_requests_oauthlib_get_post_and_signed_query(env: Env) -> None:
    session = requests.Session()
    session.auth = OAuth1(DEFAULT_KEY, DEFAULT_SECRET)
    contact = {"externalId": "1", "properties": {"email": "jan@example.com"}}
    posted = session.post(f"{env.base}/contact", json={"update": True, "contact": contact})
    assert posted.status_code == 204, posted.text
    assert session.get(f"{env.base}/contact/1").json()["externalId"] == "1"
    window = {"fromDate": "2000-01-01T00:00:00+01:00", "toDate": "2999-01-01T00:00:00+01:00"}
    feed = session.get(f"{env.base}/contact/updates/list", params=window)
    assert feed.status_code == 200, feed.text
    assert "%2B01%3A00" in feed.url
    assert [c["externalId"] for c in feed.json()["contacts"]] == ["1"]


def test_oauthlib_client_header_with_an_odd_secret_on_both_prefixes(env: Env) -> None:
    for prefix in ("/integrationservice-1.1.0", "/integrationservice"):
        with SignedClient(env.url + prefix, ODD_KEY, ODD_SECRET) as client:
            response = client.get("contact/properties/list")
            assert response.status_code == 200, response.text


def test_raw_values_comma_separators_insertion_order(env: Env) -> None:
    url = f"{env.base}/contact/properties/list"
    full, headers = hand_signed("GET", url, style="raw")
    header = headers["Authorization"]
    assert '",oauth_' in header
    assert header.index("oauth_version") < header.index("oauth_consumer_key")  # not sorted
    response = httpx.get(full, headers=headers)
    assert response.status_code == 200, response.text


def test_raw_signature_with_plus_slash_and_equals_is_not_mangled(env: Env) -> None:
    # Retry until the base64 signature holds a '+': it must not become a space.
    url = f"{env.base}/contact/properties/list"
    for _ in range(200):
        full, headers = hand_signed("GET", url, style="raw")
        if "+" in headers["Authorization"].split("oauth_signature=")[1]:
            break
    else:
        pytest.fail("no signature with '+' in 200 tries")
    assert httpx.get(full, headers=headers).status_code == 200


def test_empty_oauth_token_is_signed_and_accepted(env: Env) -> None:
    url = f"{env.base}/contact/properties/list"
    full, headers = hand_signed("GET", url, style="encoded", oauth_token="")
    assert 'oauth_token=""' in headers["Authorization"]
    assert httpx.get(full, headers=headers).status_code == 200


def test_hand_signed_query_with_an_offset_and_raw_values(env: Env) -> None:
    url = f"{env.base}/contact/updates/list"
    query = {"fromDate": "2024-01-01T00:00:00+01:00", "toDate": "2024-01-02T00:00:00+01:00"}
    full, headers = hand_signed("GET", url, query, style="raw")
    assert "fromDate=2024-01-01T00%3A00%3A00%2B01%3A00" in full
    response = httpx.get(full, headers=headers)
    assert response.status_code == 200, response.text


def test_post_without_content_type_is_accepted(env: Env) -> None:
    url = f"{env.base}/contact/"
    full, headers = hand_signed("POST", url, style="encoded")
    body = b'{"update": true, "contact": {"externalId": "7"}}'
    response = httpx.post(full, content=body, headers=headers)
    assert response.status_code == 204, response.text
    assert env.app.state.store.get("7") is not None


def test_oauth_parameters_in_the_query_are_accepted(env: Env) -> None:
    signer = Client(DEFAULT_KEY, client_secret=DEFAULT_SECRET, signature_type=SIGNATURE_TYPE_QUERY)
    uri, headers, _ = signer.sign(f"{env.base}/contact/properties/list")
    assert "Authorization" not in headers
    assert httpx.get(uri).status_code == 200


def test_realm_in_the_header_is_ignored(env: Env) -> None:
    signer = Client(
        DEFAULT_KEY, client_secret=DEFAULT_SECRET, signature_type=SIGNATURE_TYPE_AUTH_HEADER,
        realm="Spotler",
    )
    uri, headers, _ = signer.sign(f"{env.base}/contact/properties/list")
    assert "realm=" in headers["Authorization"]
    assert httpx.get(uri, headers=headers).status_code == 200


def test_percent_encoded_path_is_signed_as_sent(env: Env) -> None:
    with SignedClient(env.base) as client:
        odd = "a b+é"
        posted = client.post("contact", {"update": True, "contact": {"externalId": odd}})
        assert posted.status_code == 204
        response = client.get(f"contact/{quote(odd)}")
        assert response.status_code == 200, response.text
        assert response.json()["externalId"] == odd


# --- refused --------------------------------------------------------------------


def assert_refused(response: httpx.Response | requests.Response, error_type: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["errorType"] == error_type
    assert body["message"]


def test_wrong_secret_is_refused(env: Env) -> None:
    with SignedClient(env.base, DEFAULT_KEY, "not-the-secret") as client:
        assert_refused(client.get("contact/properties/list"), "NOT_AUTHORIZED")


def test_unknown_key_is_refused(env: Env) -> None:
    with SignedClient(env.base, "someone-else", DEFAULT_SECRET) as client:
        assert_refused(client.get("contact/properties/list"), "AUTH_NOT_FOUND")


def test_missing_or_foreign_authorization_is_refused(env: Env) -> None:
    url = f"{env.base}/contact/properties/list"
    assert_refused(httpx.get(url), "NOT_AUTHORIZED")
    assert_refused(httpx.get(url, headers={"Authorization": "Bearer abc"}), "NOT_AUTHORIZED")


def test_tampered_query_is_refused(env: Env) -> None:
    url = f"{env.base}/contact/updates/list"
    query = {"fromDate": "2024-01-01T00:00:00+01:00", "toDate": "2024-01-02T00:00:00+01:00"}
    full, headers = hand_signed("GET", url, query)
    tampered = full.replace("2024-01-01", "2023-01-01")
    assert_refused(httpx.get(tampered, headers=headers), "NOT_AUTHORIZED")


def test_tampered_method_or_path_is_refused(env: Env) -> None:
    full, headers = hand_signed("GET", f"{env.base}/contact/properties/list")
    moved = full.replace("properties", "updates")
    assert_refused(httpx.get(moved, headers=headers), "NOT_AUTHORIZED")
    full, headers = hand_signed("GET", f"{env.base}/contact")
    assert_refused(httpx.post(full, json={}, headers=headers), "NOT_AUTHORIZED")


def test_replayed_nonce_is_refused(env: Env) -> None:
    full, headers = hand_signed("GET", f"{env.base}/contact/properties/list")
    assert httpx.get(full, headers=headers).status_code == 200
    assert_refused(httpx.get(full, headers=headers), "NOT_AUTHORIZED")


def test_stale_timestamp_is_refused(env: Env) -> None:
    stale = str(int(time.time()) - 3600)
    full, headers = hand_signed(
        "GET", f"{env.base}/contact/properties/list", oauth_timestamp=stale
    )
    assert_refused(httpx.get(full, headers=headers), "NOT_AUTHORIZED")


def test_non_empty_token_and_other_methods_are_refused(env: Env) -> None:
    url = f"{env.base}/contact/properties/list"
    full, headers = hand_signed("GET", url, oauth_token="abc")
    assert_refused(httpx.get(full, headers=headers), "NOT_AUTHORIZED")
    full, headers = hand_signed("GET", url, oauth_signature_method="HMAC-SHA256")
    assert_refused(httpx.get(full, headers=headers), "NOT_AUTHORIZED")


def test_failure_status_is_configurable(env: Env) -> None:
    httpx.put(env.url + "/_sandbox/settings", json={"auth_failure_status": 403}).raise_for_status()
    response = httpx.get(f"{env.base}/contact/properties/list")
    assert response.status_code == 403
    assert response.json()["errorType"] == "NOT_AUTHORIZED"


# --- the parser and verifier on their own ---------------------------------------


def test_parse_authorization_variants() -> None:
    expected = [("oauth_consumer_key", "k"), ("oauth_signature", "a+b/c="), ("oauth_token", "")]
    headers = [
        'OAuth oauth_consumer_key="k",oauth_signature="a+b/c=",oauth_token=""',
        'OAuth realm="x", oauth_consumer_key="k", oauth_signature="a%2Bb%2Fc%3D", oauth_token=""',
        "oauth oauth_consumer_key=k , oauth_signature=a+b/c=,oauth_token=",
    ]
    for header in headers:
        assert parse_authorization(header) == expected
    assert parse_authorization("Basic abc") is None


def test_nonce_can_be_reused_once_its_timestamp_is_out_of_range() -> None:
    verifier = OAuthVerifier({"k": Secret("s")}, tolerance_s=300)
    url = "http://127.0.0.1:1/integrationservice/contact"
    params = oauth_params("k", oauth_nonce="n1", oauth_timestamp="1000")
    params["oauth_signature"] = rfc_signature("GET", url, list(params.items()), "s")
    header = encoded_header(params)
    assert verifier.verify("GET", url, "", header, now=1000) == "k"
    with pytest.raises(Exception, match="Nonce already used"):
        verifier.verify("GET", url, "", header, now=1100)
    with pytest.raises(Exception, match="Timestamp out of range"):
        verifier.verify("GET", url, "", header, now=1400)
