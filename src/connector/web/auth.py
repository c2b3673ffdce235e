"""Who may read the status: ``Authorization: Bearer <STATUS_TOKEN>``, or the sign-in cookie.

The token never travels in a URL: a router (Heroku's) writes every request line
into the logs and their drains. A browser signs in once through a form (POST);
the answer sets a cookie that holds a dated HMAC of the token, not the token,
so a leaked cookie expires (``COOKIE_MAX_AGE_S``) and a new STATUS_TOKEN
invalidates every cookie. A ``?token=`` request (an old bookmark) gets the
cookie and a 303 to the same URL without the token. Every comparison is
constant-time and independent of the supplied value's length.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response

from connector.settings import Secret

__all__ = [
    "COOKIE",
    "COOKIE_MAX_AGE_S",
    "MAX_FORM_BYTES",
    "FormTooLarge",
    "authorised",
    "clean_url",
    "cookie_value",
    "forget",
    "form_token",
    "remember",
    "token_matches",
]

COOKIE = "connector_status"
COOKIE_MAX_AGE_S = 7 * 86_400
MAX_FORM_BYTES = 4096  # a sign-in form holds one token
_ISSUED = re.compile(r"[0-9]{1,12}")


class FormTooLarge(Exception):
    """The sign-in body is larger than ``MAX_FORM_BYTES``; it was not read further."""


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def token_matches(token: Secret, supplied: str) -> bool:
    """Constant-time, whatever the length of ``supplied`` (both sides are hashed first)."""
    return hmac.compare_digest(_digest(supplied), _digest(token.reveal()))


def cookie_value(token: Secret, issued: int) -> str:
    """``<issued>.<HMAC-SHA256 of issued under the token>``: proves the token without holding it."""
    mac = hmac.new(token.reveal().encode(), f"connector-status-cookie:{issued}".encode(), hashlib.sha256)
    return f"{issued}.{mac.hexdigest()}"


def _cookie_valid(token: Secret, value: str, now: float) -> bool:
    issued, _, _ = value.partition(".")
    if not _ISSUED.fullmatch(issued) or not 0 <= now - int(issued) <= COOKIE_MAX_AGE_S:
        return False
    return hmac.compare_digest(cookie_value(token, int(issued)).encode(), value.encode("utf-8", "surrogateescape"))


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return (credentials.strip() or None) if scheme.lower() == "bearer" else None


def authorised(request: Request, token: Secret) -> bool:
    """A valid bearer token or sign-in cookie (the query string is never looked at here)."""
    supplied = _bearer(request)
    if supplied is not None:
        return token_matches(token, supplied)
    cookie = request.cookies.get(COOKIE)
    return cookie is not None and _cookie_valid(token, cookie, time.time())


def _https(request: Request) -> bool:
    """Served over https, directly or behind a TLS-terminating router (``X-Forwarded-Proto``)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def remember(response: Response, request: Request, token: Secret) -> Response:
    """Set the sign-in cookie: HttpOnly, SameSite=Strict, Secure over https."""
    response.set_cookie(COOKIE, cookie_value(token, int(time.time())), max_age=COOKIE_MAX_AGE_S, path="/",
                        httponly=True, secure=_https(request), samesite="strict")
    return response


def forget(response: Response, request: Request) -> Response:
    """Clear the sign-in cookie."""
    response.delete_cookie(COOKIE, path="/", httponly=True, secure=_https(request), samesite="strict")
    return response


def clean_url(request: Request) -> str:
    """The request's path and query without ``token`` (relative: right behind any proxy)."""
    rest = [(k, v) for k, v in parse_qsl(request.url.query, keep_blank_values=True) if k != "token"]
    return request.url.path + (f"?{urlencode(rest)}" if rest else "")


async def form_token(request: Request) -> str | None:
    """The ``token`` field of a url-encoded sign-in form; ``FormTooLarge`` past ``MAX_FORM_BYTES``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge
    fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return fields.get("token") or None
