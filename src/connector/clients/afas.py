"""The AFAS Profit REST client: GetConnector pages, metainfo, UpdateConnector writes.

One ``httpx.Client`` with keep-alive (AFAS warns against ``Connection:
close``). Every failure leaves as a connector error: an HTTP 500 body is read
to tell a locked record or a server timeout (retriable) from a validation
failure (the record is rejected), and a 503 honours its ``retry_after``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from connector.clients.afas_filter import AMSTERDAM, Filter, format_value
from connector.clients.http import redact, retry_after_seconds, send, status_error
from connector.errors import (
    AuthError,
    ConfigError,
    ConnectorError,
    FatalError,
    RecordRejected,
    RetriableError,
)
from connector.schemas.afas import (
    AfasErrorBody,
    GetConnectorMeta,
    GetConnectorPage,
    MetaInfo,
    UpdateConnectorMeta,
    UpdateResult,
)
from connector.settings import Secret

__all__ = ["MAX_QUERY_LENGTH", "AfasClient", "page_size_for", "parse_afas_datetime"]

_T = TypeVar("_T")

MAX_QUERY_LENGTH = 2049  # AFAS answers a longer query string with a bare 404
_CELLS_PER_CALL = 150_000
_HEX_TOKEN = re.compile(r"^[0-9A-Fa-f]{64}$")
_RETRIABLE_TEXTS = (
    "locked",
    "vergrendeld",
    "in gebruik",
    "maximale tijdsduur",
    "maximum duration",
    "too many parallel",
    "unexpected error",
    "onverwachte fout",
)
_NOT_AUTHORISED_TEXTS = ("not authorized", "niet geautoriseerd", "not supported for this app")
_RECORD_KEYS = ("CdId", "BcCoOga", "BcCoPer", "BcCo")

_PAGE = msgspec.json.Decoder(GetConnectorPage)
_META = msgspec.json.Decoder(MetaInfo)
_GET_META = msgspec.json.Decoder(GetConnectorMeta)
_UPDATE_META = msgspec.json.Decoder(UpdateConnectorMeta)
_RESULT = msgspec.json.Decoder(UpdateResult)
_ERROR = msgspec.json.Decoder(AfasErrorBody)
_ENCODER = msgspec.json.Encoder()


def parse_afas_datetime(text: str) -> datetime:
    """An AFAS date-time (its ``Z`` is a lie: the clock is Amsterdam's) as an aware datetime."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1]
    value = datetime.fromisoformat(raw)
    if value.tzinfo is not None:  # a real offset, which AFAS does not send today
        return value.astimezone(AMSTERDAM)
    return value.replace(tzinfo=AMSTERDAM)


def page_size_for(columns: int) -> int:
    """AFAS's sizing rule: about 150,000 cells per call."""
    return max(1, _CELLS_PER_CALL // max(1, columns))


def _authorization(token: Secret | str) -> str:
    raw = (token.reveal() if isinstance(token, Secret) else token).strip()
    if not raw:
        raise ConfigError("the AFAS token is empty")
    if _HEX_TOKEN.match(raw):
        raw = f"<token><version>1</version><data>{raw}</data></token>"
    elif not raw.startswith("<"):
        try:  # already Base64 of the XML: send it as it is
            if base64.b64decode(raw, validate=True).lstrip().startswith(b"<token>"):
                return f"AfasToken {raw}"
        except (binascii.Error, ValueError):
            pass
    return "AfasToken " + base64.b64encode(raw.encode("utf-8")).decode("ascii")


def _record_key(fields: Mapping[str, Any]) -> str | None:
    present = [name for name in _RECORD_KEYS if fields.get(name) not in (None, "")]
    parts = [f"{name} {fields[name]}" for name in present]
    return ", ".join(parts) or None


def _error_body(response: httpx.Response) -> AfasErrorBody | None:
    content = response.content.strip()
    if content:
        try:
            return _ERROR.decode(content)
        except msgspec.DecodeError:  # ValidationError is a DecodeError too
            pass
    legacy = response.headers.get("X-PROFIT-ERROR")
    if legacy:
        try:
            return AfasErrorBody(
                externalMessage=base64.b64decode(legacy).decode("utf-8", "replace")
            )
        except (binascii.Error, ValueError):
            pass
    if content:
        return AfasErrorBody(message=content[:500].decode("utf-8", "replace"))
    return None


def _detail(body: AfasErrorBody) -> str:
    refs = [
        f"{name} {value}"
        for name, value in (
            ("errorNumber", body.errorNumber),
            ("profitLogReference", body.profitLogReference),
        )
        if value not in (None, "")
    ]
    text = redact(body.text)
    return f"{text} [{', '.join(refs)}]" if refs else text


def _classify(
    response: httpx.Response, what: str, *, writing: bool, key: str | None
) -> ConnectorError:
    status = response.status_code
    body = _error_body(response)
    text = body.text.lower() if body else ""
    detail = _detail(body) if body else None
    if status == 503:
        retry_after = body.retry_after if body and body.retry_after is not None else None
        if retry_after is None:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return RetriableError(
            f"{what}: HTTP 503 (AFAS unavailable)",
            retry_after=retry_after,
            status=503,
            detail=detail,
        )
    if status != 500 or body is None:
        return status_error(response, what, detail)
    said = redact(body.text)
    if any(marker in text for marker in _NOT_AUTHORISED_TEXTS):
        return AuthError(f"{what}: HTTP 500 not authorised: {said}", status=500, detail=detail)
    if not text or any(marker in text for marker in _RETRIABLE_TEXTS):
        return RetriableError(f"{what}: HTTP 500: {said}", status=500, detail=detail)
    if writing:
        code = None if body.errorNumber is None else str(body.errorNumber)
        return RecordRejected(
            f"{what}: HTTP 500 rejected: {said}", key=key, code=code, status=500, detail=detail
        )
    return FatalError(f"{what}: HTTP 500: {said}", status=500, detail=detail)


def _segment(name: str) -> str:
    return quote(name, safe="")


class AfasClient:
    """AFAS Profit REST: read GetConnectors, write KnContact / KnPerson / KnOrganisation."""

    def __init__(
        self,
        base_url: str,
        token: Secret | str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            headers={
                "Authorization": _authorization(token),
                "Accept": "application/json",
                "User-Agent": "afas-spotler-connector",
            },
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"AfasClient({self.base_url!r})"

    def _call(
        self, request: httpx.Request, what: str, *, writing: bool = False, key: str | None = None
    ) -> httpx.Response:
        response = send(self._http, request, what=what)
        if response.is_success:
            return response
        raise _classify(response, what, writing=writing, key=key)

    def _get(
        self, path: str, decoder: msgspec.json.Decoder[_T], params: dict[str, str] | None = None
    ) -> _T:
        request = self._http.build_request("GET", path, params=params)
        what = f"AFAS GET {path}"
        if len(request.url.query) + 1 > MAX_QUERY_LENGTH:
            raise FatalError(f"{what}: query string longer than {MAX_QUERY_LENGTH} characters")
        response = self._call(request, what)
        try:
            return decoder.decode(response.content)
        except msgspec.DecodeError as exc:
            raise FatalError(
                f"{what}: unexpected answer ({exc})", status=response.status_code
            ) from None

    def get_page(
        self,
        connector_id: str,
        *,
        filter: Filter | None = None,
        order_by: Sequence[str] = (),
        skip: int = 0,
        take: int = 100,
    ) -> list[dict[str, Any]]:
        """One page of rows; ``order_by`` entries may start with ``-`` for descending."""
        params = {"skip": str(skip), "take": str(take)}
        if order_by:
            params["orderbyfieldids"] = ",".join(order_by)
        if filter is not None:
            params.update(filter.to_params())
        return self._get(f"connectors/{_segment(connector_id)}", _PAGE, params).rows

    def iter_pages(
        self,
        connector_id: str,
        *,
        order_by: Sequence[str],
        page_size: int,
        filter: Filter | None = None,
        skip: int = 0,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every non-empty page in a stable order, until a page comes back short."""
        if not order_by:
            raise ValueError("paging needs order_by, or AFAS may return rows in a different order")
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        while True:
            rows = self.get_page(
                connector_id, filter=filter, order_by=order_by, skip=skip, take=page_size
            )
            if rows:
                yield rows
            if len(rows) < page_size:
                return
            skip += len(rows)

    def metainfo(self) -> MetaInfo:
        """The connectors this token may use, and its environment."""
        return self._get("metainfo", _META)

    def getconnector_meta(self, connector_id: str) -> GetConnectorMeta:
        """The columns of a GetConnector."""
        return self._get(f"metainfo/get/{_segment(connector_id)}", _GET_META)

    def update_meta(self, connector: str) -> UpdateConnectorMeta:
        """The fields (free fields included) of an UpdateConnector."""
        return self._get(f"metainfo/update/{_segment(connector)}", _UPDATE_META)

    def update(
        self, connector: str, fields: Mapping[str, Any], *, method: str = "PUT"
    ) -> UpdateResult:
        """Write ``fields`` through an UpdateConnector (PUT updates, POST inserts)."""
        method = method.upper()
        if method not in ("PUT", "POST"):
            raise ValueError(f"UpdateConnectors take PUT or POST, not {method}")
        root = connector.split("/", 1)[0]
        values = {k: format_value(v) if isinstance(v, datetime) else v for k, v in fields.items()}
        path = f"connectors/{quote(connector, safe='/')}"
        key = _record_key(fields)
        what = f"AFAS {method} {path}" + (f" ({key})" if key else "")
        request = self._http.build_request(
            method,
            path,
            content=_ENCODER.encode({root: {"Element": {"Fields": values}}}),
            headers={"Content-Type": "application/json;charset=utf-8"},
        )
        response = self._call(request, what, writing=True, key=key)
        if not response.content.strip():
            return UpdateResult()
        try:
            return _RESULT.decode(response.content)
        except msgspec.DecodeError:
            # The write went through; an odd success body must not turn it into a retry.
            return UpdateResult()

    def update_contact(self, fields: Mapping[str, Any]) -> UpdateResult:
        """PUT KnContact (identified by ``BcCoOga`` + ``BcCoPer`` or ``CdId`` + ``ViKc``)."""
        return self.update("KnContact", fields)

    def update_person(self, fields: Mapping[str, Any]) -> UpdateResult:
        """PUT KnPerson (identified by ``BcCo``, with ``MatchPer`` "0")."""
        return self.update("KnPerson", fields)

    def update_organisation(self, fields: Mapping[str, Any]) -> UpdateResult:
        """PUT KnOrganisation (identified by ``BcCo``, with ``MatchOga`` "0")."""
        return self.update("KnOrganisation", fields)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AfasClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
