"""The AFAS Profit REST client: GetConnector pages, metainfo, UpdateConnector writes.

One ``httpx.Client`` with keep-alive (AFAS warns against ``Connection:
close``). Every failure leaves as a connector error (``afas_errors``). Every
HTTP call runs inside the optional ``gate``, so one shared cap can hold all of
a deployment's AFAS calls, reads and writes alike: AFAS allows 8 in parallel.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from connector.clients.afas_errors import classify, record_key
from connector.clients.afas_filter import AMSTERDAM, Filter, format_value
from connector.clients.afas_paging import (
    as_contact_id,
    fill_batches,
    ids_filter,
    keyset_filter,
    last_key,
    page_params,
    rows_by_key,
)
from connector.clients.http import send
from connector.errors import ConfigError, FatalError
from connector.schemas.afas import (
    GetConnectorMeta,
    GetConnectorPage,
    MetaInfo,
    UpdateConnectorMeta,
    UpdateResult,
)
from connector.settings import Secret

__all__ = ["MAX_QUERY_LENGTH", "AfasClient", "Gate", "page_size_for", "parse_afas_datetime"]

_T = TypeVar("_T")

# Entered around every HTTP call, e.g. ``ConcurrencyCap.slot``.
Gate = Callable[[], contextlib.AbstractContextManager[None]]

MAX_QUERY_LENGTH = 2049  # AFAS answers a longer query string with a bare 404
_CELLS_PER_CALL = 150_000
_HEX_TOKEN = re.compile(r"^[0-9A-Fa-f]{64}$")
_PAGE = msgspec.json.Decoder(GetConnectorPage)
_META = msgspec.json.Decoder(MetaInfo)
_GET_META = msgspec.json.Decoder(GetConnectorMeta)
_UPDATE_META = msgspec.json.Decoder(UpdateConnectorMeta)
_RESULT = msgspec.json.Decoder(UpdateResult)
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
        gate: Gate | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._gate: Gate = gate or contextlib.nullcontext
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
        with self._gate():
            response = send(self._http, request, what=what)
        if response.is_success:
            return response
        raise classify(response, what, writing=writing, key=key)

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

    def _fits(self, path: str, params: dict[str, str]) -> bool:
        query = self._http.build_request("GET", path, params=params).url.query
        return len(query) + 1 <= MAX_QUERY_LENGTH

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
        params = page_params(filter, order_by, skip, take)
        return self._get(f"connectors/{_segment(connector_id)}", _PAGE, params).rows

    def iter_pages(
        self,
        connector_id: str,
        *,
        key: str,
        page_size: int,
        filter: Filter | None = None,
        after: object | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every non-empty page in ``key`` order, each asking ``key > last`` at ``skip=0``.

        ``key`` is a unique column; ``filter`` is AND-ed with the key condition
        and ``after`` resumes after that key value. A short page ends the walk.
        """
        if not key or key.startswith(("-", "+")):
            raise ValueError("keyset paging needs one key column, in ascending order")
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        while True:
            rows = self.get_page(
                connector_id,
                filter=keyset_filter(filter, key, after),
                order_by=[key],
                take=page_size,
            )
            if rows:
                yield rows
            if len(rows) < page_size:
                return
            after = last_key(rows, key, connector_id)

    def rows_by_ids(
        self, connector_id: str, *, key: str, ids: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """The current rows of the contacts ``ids`` names, by id; absent ids are left out.

        ``key`` holds AFAS ContactIds (integers). An id not written the way
        AFAS writes one (ASCII digits, no leading zero, so not "²" or "007")
        cannot name a contact: it is skipped, never sent. The ids are OR-ed in
        as few calls as fit AFAS's query-length limit.
        """
        wanted = list(dict.fromkeys(n for n in map(as_contact_id, ids) if n is not None))
        path = f"connectors/{_segment(connector_id)}"

        def fits(batch: Sequence[int]) -> bool:
            return self._fits(path, page_params(ids_filter(key, batch), [key], 0, len(batch) + 1))

        found: dict[str, dict[str, Any]] = {}
        for batch in fill_batches(wanted, fits):
            # One row more than asked for would show a key that is not unique.
            flt = ids_filter(key, batch)
            rows = self.get_page(connector_id, filter=flt, order_by=[key], take=len(batch) + 1)
            found.update(rows_by_key(rows, key, connector_id, asked=len(batch)))
        return found

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
        key = record_key(fields)
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
