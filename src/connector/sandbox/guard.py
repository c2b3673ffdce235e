"""The bounds of both sandboxes: body sizes, seed sizes, and who may use the control API.

On 127.0.0.1 the control API (``/_sandbox/...``) stays open, as the tests and
tools expect. Anywhere else a sandbox can reset, read or fault everything, so
it binds a non-loopback address only with a control token, which every
control request must then send as ``Authorization: Bearer <token>``.
A request body above ``MAX_BODY_BYTES`` is refused with 413 from its
Content-Length, or as soon as a chunked body passes the limit, never read
whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import os
from collections.abc import Mapping

from connector.errors import ConfigError
from connector.sandbox.faults import ASGIApp, ErrorBody, Message, Receive, Scope, Send

__all__ = [
    "CONTROL_TOKEN_ENV",
    "MAX_BODY_BYTES",
    "MAX_CONTACTS",
    "SandboxGuard",
    "check_bind",
    "control_headers",
    "is_loopback",
]

MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_CONTACTS = 1_000_000  # one reset or seed call; a million contacts is already minutes of CPU and GBs
CONTROL_TOKEN_ENV = "SANDBOX_CONTROL_TOKEN"  # noqa: S105 (the variable's name, not a secret)
_CONTROL_PREFIX = "/_sandbox"


class _TooLarge(Exception):
    """The body passed the limit while the app was reading it."""


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (a host name other than localhost counts as not loopback)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, control_token: str | None) -> None:
    """Refuse (``ConfigError``) to serve a non-loopback address with an open control API."""
    if not control_token and not is_loopback(host):
        raise ConfigError(
            f"refusing to bind {host}: the sandbox's control API can reset and read everything; "
            f"set --control-token (or {CONTROL_TOKEN_ENV}) to serve beyond this machine"
        )


def control_headers(token: str | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a control API client sends: a bearer header when a token is given or in the environment."""
    token = token if token is not None else (environ if environ is not None else os.environ).get(CONTROL_TOKEN_ENV)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


class SandboxGuard:
    """ASGI middleware in front of a sandbox's routes; ``error_body`` speaks the sandbox's dialect."""

    def __init__(
        self, app: ASGIApp, *, error_body: ErrorBody, control_token: str | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.error_body = error_body
        self.control_token = control_token
        self.max_body_bytes = max_body_bytes

    def _may_control(self, scope: Scope) -> bool:
        if not self.control_token:
            return True
        scheme, _, supplied = (_header(scope, b"authorization") or b"").partition(b" ")
        expected = self.control_token.encode()
        # Hashed first: constant-time whatever the supplied length.
        return scheme.lower() == b"bearer" and hmac.compare_digest(_digest(supplied.strip()), _digest(expected))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(_CONTROL_PREFIX) and not self._may_control(scope):
            await self._refuse(send, 401, "the control API needs Authorization: Bearer <control token>",
                               {"www-authenticate": 'Bearer realm="sandbox control"'})
            return
        declared = (_header(scope, b"content-length") or b"").strip()
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(send, 413, self._too_large())
            return
        received = 0
        overflowed = False

        async def limited_receive() -> Message:
            nonlocal received, overflowed
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    overflowed = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if not overflowed:  # whatever the app answers to the overflow is replaced by the 413
                await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if overflowed:
            await self._refuse(send, 413, self._too_large())

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body_bytes // (1024 * 1024)} MiB"

    async def _refuse(self, send: Send, status: int, reason: str, extra: dict[str, str] | None = None) -> None:
        body, headers = self.error_body(status, reason)
        raw = [(b"content-type", b"application/json; charset=utf-8"), (b"connection", b"close")]
        raw += [(k.encode(), v.encode()) for k, v in {**headers, **(extra or {})}.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
