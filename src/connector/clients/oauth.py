"""OAuth 1.0a one-legged HMAC-SHA1 signing for Spotler Mail+, through oauthlib.

The consumer key and secret sign every request; there is no access token. The
query string is part of the signature, a JSON body is not (it is sent as
``application/json``, so RFC 5849 leaves it out).
"""

from __future__ import annotations

from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_TYPE_AUTH_HEADER, Client

from connector.errors import ConfigError
from connector.redaction import redact
from connector.settings import Secret

__all__ = ["OAuth1Signer"]


class OAuth1Signer:
    """Computes the ``Authorization: OAuth …`` header for one request."""

    __slots__ = ("_client", "key")

    def __init__(self, key: str, secret: Secret | str) -> None:
        raw = secret.reveal() if isinstance(secret, Secret) else secret
        if not key or not raw:
            raise ConfigError("Spotler key and secret must both be set")
        self.key = key
        self._client = Client(
            key,
            client_secret=raw,
            signature_method=SIGNATURE_HMAC_SHA1,
            signature_type=SIGNATURE_TYPE_AUTH_HEADER,
        )

    def authorization(self, method: str, url: str) -> str:
        """The header value for ``method url`` (the URL exactly as sent, query included)."""
        try:
            _, headers, _ = self._client.sign(url, http_method=method.upper())
        except ValueError as exc:
            raise ConfigError(f"cannot sign {method.upper()} request: {redact(str(exc))}") from None
        return str(headers["Authorization"])

    def __repr__(self) -> str:
        return f"OAuth1Signer(key={self.key!r}, secret='***')"
