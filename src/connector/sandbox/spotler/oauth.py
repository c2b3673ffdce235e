"""OAuth 1.0a one-legged HMAC-SHA1 verification, as Spotler Mail+ expects it.

The base string is built by oauthlib's RFC 5849 helpers from the method, the
URL as the client called it (scheme, Host header, raw path; no query) and
the oauth_* parameters plus every query parameter. A JSON body is never
signed. The Authorization header is parsed leniently, as working clients
differ: values percent-encoded or raw (only ``%XX`` is decoded, ``+`` stays
``+``), ``", "`` or ``","`` separators, any order, an optional ``realm``
(ignored) and an optional empty ``oauth_token`` (signed like any parameter).
Without a header, oauth_* parameters in the query are accepted too.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote

from oauthlib.oauth1.rfc5849 import signature

from connector.sandbox.spotler.wire import ApiError
from connector.settings import Secret

__all__ = ["OAuthVerifier", "parse_authorization"]

_PARAM = re.compile(r'([A-Za-z0-9_.~-]+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')
_REQUIRED = (
    "oauth_consumer_key", "oauth_nonce", "oauth_signature", "oauth_signature_method",
    "oauth_timestamp",
)


def parse_authorization(header: str) -> list[tuple[str, str]] | None:
    """The parameters of an ``OAuth`` Authorization header, or None if it is not one."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "oauth":
        return None
    return [
        (name, unquote(quoted or raw))
        for name, quoted, raw in _PARAM.findall(rest)
        if name != "realm"
    ]


class _SignedRequest:
    """The duck type oauthlib's ``verify_hmac_sha1`` reads."""

    __slots__ = ("http_method", "params", "signature", "uri")

    def __init__(self, http_method: str, uri: str, params: list[tuple[str, str]], sig: str):
        self.http_method = http_method
        self.uri = uri
        self.params = params
        self.signature = sig


class OAuthVerifier:
    """Checks signatures, timestamps (real clock) and nonces against known consumer keys."""

    def __init__(
        self,
        credentials: Mapping[str, Secret],
        *,
        tolerance_s: float = 300.0,
        check_nonce: bool = True,
        failure_status: int = 401,
    ) -> None:
        self.credentials = dict(credentials)
        self.tolerance_s = tolerance_s
        self.check_nonce = check_nonce
        self.failure_status = failure_status
        self._lock = threading.Lock()
        self._nonces: set[tuple[str, str, str]] = set()
        self._expiry: deque[tuple[float, tuple[str, str, str]]] = deque()

    def verify(
        self, method: str, url: str, query: str, authorization: str | None,
        *, now: float | None = None,
    ) -> str:
        """The consumer key of a correctly signed request; raises ApiError otherwise."""
        query_params = parse_qsl(query, keep_blank_values=True)
        if authorization:
            header_params = parse_authorization(authorization)
            if header_params is None:
                raise self._fail("NOT_AUTHORIZED", "Authorization header is not OAuth")
            params = query_params + header_params
        elif any(name == "oauth_signature" for name, _ in query_params):
            params = query_params
        else:
            raise self._fail("NOT_AUTHORIZED", "No OAuth authorization given")
        oauth = dict(p for p in params if p[0].startswith("oauth_"))
        if any(not oauth.get(name) for name in _REQUIRED):
            raise self._fail("NOT_AUTHORIZED", "Incomplete OAuth parameters")
        method_ok = oauth["oauth_signature_method"] == "HMAC-SHA1"
        if not method_ok or oauth.get("oauth_version", "1.0") != "1.0":
            raise self._fail("NOT_AUTHORIZED", "Unsupported OAuth signature method or version")
        key = oauth["oauth_consumer_key"]
        secret = self.credentials.get(key)
        if secret is None:
            raise self._fail("AUTH_NOT_FOUND", "Unknown consumer key")
        if oauth.get("oauth_token"):
            raise self._fail("NOT_AUTHORIZED", "Unknown token")
        now = time.time() if now is None else now
        try:
            stamp = int(oauth["oauth_timestamp"])
        except ValueError:
            raise self._fail("NOT_AUTHORIZED", "Invalid timestamp") from None
        if abs(now - stamp) > self.tolerance_s:
            raise self._fail("NOT_AUTHORIZED", "Timestamp out of range")
        signed = [p for p in params if p[0] != "oauth_signature"]
        request = _SignedRequest(method.upper(), url, signed, oauth["oauth_signature"])
        if not signature.verify_hmac_sha1(request, client_secret=secret.reveal()):
            raise self._fail("NOT_AUTHORIZED", "Invalid signature")
        if self.check_nonce and not self._fresh_nonce((key, oauth["oauth_nonce"], str(stamp)), now):
            raise self._fail("NOT_AUTHORIZED", "Nonce already used")
        return key

    def _fresh_nonce(self, nonce: tuple[str, str, str], now: float) -> bool:
        with self._lock:
            while self._expiry and self._expiry[0][0] < now:
                self._nonces.discard(self._expiry.popleft()[1])
            if nonce in self._nonces:
                return False
            self._nonces.add(nonce)
            # A nonce can only be replayed while its timestamp is still accepted.
            self._expiry.append((int(nonce[2]) + self.tolerance_s, nonce))
            return True

    def forget_nonces(self) -> None:
        with self._lock:
            self._nonces.clear()
            self._expiry.clear()

    def _fail(self, error_type: str, message: str) -> ApiError:
        return ApiError(self.failure_status, error_type, message)
