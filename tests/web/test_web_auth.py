"""Signing in to the status page over real HTTP: the token is never in a URL, a page or a header."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie

import httpx
import pytest
import redis

from connector.sandbox.server import BackgroundServer
from connector.settings import Secret, Settings
from connector.web import auth
from connector.web.app import create_app

TOKEN = "Tok3n-that-must-never-leak"
ROUTES = ["/", "/status.json", "/metrics"]

Serve = Callable[..., str]


@pytest.fixture
def base(redis_client: redis.Redis) -> Iterator[str]:
    env = {"REDIS_URL": os.environ["REDIS_URL"], "STATUS_TOKEN": TOKEN}
    with BackgroundServer(create_app(Settings.from_env(env), redis_client)) as server:
        yield server.url


def _cookie(response: httpx.Response) -> SimpleCookie:
    [header] = response.headers.get_list("set-cookie")
    jar = SimpleCookie()
    jar.load(header)
    return jar


def _signed_in(base: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/signin", data={"token": TOKEN}, headers=headers)


def _with_cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{auth.COOKIE}={value}"}


def _assert_no_token(response: httpx.Response) -> None:
    assert TOKEN not in response.text, response.request.url
    for name, value in response.headers.multi_items():
        assert TOKEN not in value, (name, response.request.url)
    assert "token=" not in response.headers.get("location", "")
    assert "url=" not in response.text.lower(), "a meta refresh that names a URL"


def test_the_token_never_appears_in_a_body_location_or_refresh_on_any_route_or_path(base: str) -> None:
    cookie = auth.cookie_value(Secret(TOKEN), int(time.time()))
    ways: list[dict[str, object]] = [
        {}, {"headers": {"Authorization": f"Bearer {TOKEN}"}}, {"headers": {"Authorization": "Bearer nope"}},
        {"params": {"token": TOKEN}}, {"params": {"token": TOKEN, "x": "1"}}, {"params": {"token": "nope"}},
        {"headers": _with_cookie(cookie)}, {"headers": _with_cookie(TOKEN)},
        {"params": {"token": TOKEN}, "headers": {"X-Forwarded-Proto": "https"}},
    ]
    seen = 0
    for path in [*ROUTES, "/healthz"]:
        for way in ways:
            for method in ("GET", "HEAD"):
                response = httpx.request(method, f"{base}{path}", **way)  # type: ignore[arg-type]
                _assert_no_token(response)
                seen += 1
                if response.status_code == 303:  # and where it leads, cookie and all, as a browser goes
                    value = _cookie(response)[auth.COOKIE].value
                    followed = httpx.get(f"{base}{response.headers['location']}", headers=_with_cookie(value))
                    assert followed.status_code == 200
                    _assert_no_token(followed)
    for data in ({"token": TOKEN}, {"token": "nope"}, {}):
        _assert_no_token(httpx.post(f"{base}/signin", data=data))
    _assert_no_token(httpx.post(f"{base}/signout", headers=_with_cookie(cookie)))
    assert seen == 4 * len(ways) * 2


@pytest.mark.parametrize("path", ROUTES)
def test_a_token_in_the_url_is_a_303_to_the_clean_url_setting_the_cookie(base: str, path: str) -> None:
    response = httpx.get(f"{base}{path}", params={"token": TOKEN, "view": "all"})
    assert response.status_code == 303
    assert response.headers["location"] == f"{path}?view=all"
    assert response.text == ""
    value = _cookie(response)[auth.COOKIE].value
    assert value != TOKEN
    assert httpx.get(f"{base}{path}", headers=_with_cookie(value)).status_code == 200
    bare = httpx.get(f"{base}{path}", params={"token": TOKEN})
    assert bare.headers["location"] == path


def test_the_page_refreshes_its_clean_url_only(base: str) -> None:
    page = httpx.get(f"{base}/", params={"token": TOKEN}, follow_redirects=True)
    assert page.status_code == 200
    assert str(page.url) == f"{base}/"
    assert '<meta http-equiv="refresh" content="5">' in page.text  # reloads the URL it is at: no token
    assert "refresh" not in page.headers


@pytest.mark.parametrize("path", ROUTES)
def test_bearer_works_for_the_page_status_json_and_metrics(base: str, path: str) -> None:
    response = httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert "set-cookie" not in response.headers


def test_without_credentials_the_page_is_the_sign_in_form_and_tools_get_a_401(base: str) -> None:
    page = httpx.get(f"{base}/")
    assert page.status_code == 401
    assert '<form method="post" action="/signin">' in page.text
    assert 'type="password"' in page.text
    for path in ("/status.json", "/metrics"):
        refused = httpx.get(f"{base}{path}")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in refused.text


def test_signing_in_with_the_form(base: str) -> None:
    wrong = httpx.post(f"{base}/signin", data={"token": TOKEN + "x"})
    assert wrong.status_code == 401
    assert "not the status token" in wrong.text
    assert "set-cookie" not in wrong.headers
    assert httpx.post(f"{base}/signin", data={}).status_code == 401

    right = _signed_in(base)
    assert (right.status_code, right.headers["location"]) == (303, "/")
    value = _cookie(right)[auth.COOKIE].value
    for path in ROUTES:
        assert httpx.get(f"{base}{path}", headers=_with_cookie(value)).status_code == 200
    with httpx.Client(base_url=base, follow_redirects=True) as browser:  # a client that keeps cookies
        page = browser.post("/signin", data={"token": TOKEN})
        assert (page.status_code, page.url.path) == (200, "/")
        assert 'data-metric="exit_code"' in page.text
        assert browser.post("/signout").status_code == 401  # back to the sign-in form
        assert browser.get("/").status_code == 401


def test_the_cookie_is_httponly_samesite_strict_and_secure_behind_https(base: str) -> None:
    plain = _cookie(_signed_in(base))[auth.COOKIE]
    assert plain["httponly"] is True
    assert plain["samesite"].lower() == "strict"
    assert (plain["path"], plain["max-age"]) == ("/", str(auth.COOKIE_MAX_AGE_S))
    assert not plain["secure"], "over plain http a Secure cookie would never come back"
    behind_router = _cookie(_signed_in(base, **{"X-Forwarded-Proto": "https"}))[auth.COOKIE]
    assert behind_router["secure"] is True
    assert behind_router["httponly"] is True
    assert behind_router["samesite"].lower() == "strict"
    from_url = httpx.get(f"{base}/", params={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"})
    assert _cookie(from_url)[auth.COOKIE]["secure"] is True


def test_forged_stale_or_foreign_cookies_are_refused(base: str) -> None:
    now = int(time.time())
    for value in (TOKEN, f"{now}.{'0' * 64}", f"{now}", "", "x.y",
                  auth.cookie_value(Secret(TOKEN), now - auth.COOKIE_MAX_AGE_S - 60),
                  auth.cookie_value(Secret(TOKEN), now + 3600),
                  auth.cookie_value(Secret("another-token"), now)):
        assert httpx.get(f"{base}/status.json", headers=_with_cookie(value)).status_code == 401, value
    assert httpx.get(f"{base}/status.json", headers=_with_cookie(auth.cookie_value(Secret(TOKEN), now))
                     ).status_code == 200


def test_an_oversized_sign_in_body_is_413(base: str) -> None:
    response = httpx.post(f"{base}/signin", content=b"token=" + b"a" * (auth.MAX_FORM_BYTES + 1),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413


def test_token_comparison_takes_any_length_and_any_text() -> None:
    token = Secret(TOKEN)
    assert auth.token_matches(token, TOKEN)
    for other in ("", TOKEN[:-1], TOKEN + "x", TOKEN * 100, "é" * 20, "\udcff"):
        assert not auth.token_matches(token, other)


def test_healthz_body_is_exactly_ok(base: str) -> None:
    for method in ("GET", "HEAD"):
        response = httpx.request(method, f"{base}/healthz")
        assert response.status_code == 200
    assert httpx.get(f"{base}/healthz").content == b"ok"
