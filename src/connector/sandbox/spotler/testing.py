"""A small signed HTTP client for the sandbox (tests, benchmarks, demos).

Deliberately independent of ``connector.clients``: it signs through
oauthlib's own Client, so the sandbox is checked against a third party.
"""

from __future__ import annotations

from typing import Any

import httpx
from oauthlib.oauth1 import SIGNATURE_TYPE_AUTH_HEADER, Client

from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET

__all__ = ["SignedClient"]

QueryParams = dict[str, str | int]


class SignedClient:
    """Signed calls below ``base_url`` (``http://127.0.0.1:PORT/integrationservice-1.1.0``)."""

    def __init__(
        self, base_url: str, key: str = DEFAULT_KEY, secret: str = DEFAULT_SECRET,
        *, timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._signer = Client(key, client_secret=secret, signature_type=SIGNATURE_TYPE_AUTH_HEADER)
        self._http = httpx.Client(timeout=timeout)

    def request(
        self, method: str, path: str, *, params: QueryParams | None = None, json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        absolute = path.startswith(("http://", "https://"))  # e.g. a feed's paging.next
        target = path if absolute else f"{self.base_url}/{path.lstrip('/')}"
        url = str(httpx.URL(target, params=params) if params else httpx.URL(target))
        signed_url, signed, _ = self._signer.sign(url, http_method=method)
        sent = {"Accept": "application/json", **signed, **(headers or {})}
        if json is None:
            return self._http.request(method, signed_url, headers=sent)
        sent.setdefault("Content-Type", "application/json")
        return self._http.request(method, signed_url, json=json, headers=sent)

    def get(self, path: str, *, params: QueryParams | None = None) -> httpx.Response:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> httpx.Response:
        return self.request("POST", path, json=json)

    def put(self, path: str, json: Any = None) -> httpx.Response:
        return self.request("PUT", path, json=json)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SignedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
