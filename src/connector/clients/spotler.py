"""The Spotler Mail+ REST client: contact upserts, the change and bounce feeds.

Every request is signed with OAuth 1.0a (query included, JSON body not) and
asks for JSON. The feeds accept both the ``{paging, contacts|bounces}`` and
the bare-array answers; they are read window by window so that no item is
skipped (``spotler_feed``), and a malformed item comes as a ``FeedProblem``
in its place. ``search`` pages with ``after``/``pageSize`` until a page comes
back short.

An optional ``pace`` (the shared ``SPOTLER_RATE_PER_S`` limiter) is waited for
by every request once it is built and signed, right before it is sent: the
spacing the limiter keeps is then the spacing Spotler sees, not blurred by the
time spent building a batch after the slot came, which would put one request
too many in one of Spotler's one-second windows now and then (a 429).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import TypeVar
from urllib.parse import quote, unquote

import httpx
import msgspec

from connector.clients.http import send, status_error
from connector.clients.oauth import OAuth1Signer
from connector.clients.spotler_feed import Entry, WindowReader, bounce_entries, contact_entries
from connector.errors import ConnectorError, FatalError, RecordRejected
from connector.redaction import redact
from connector.schemas.spotler import (
    AddContactResult,
    AddContactsRequest,
    Bounce,
    Contact,
    ContactRequest,
    ContactsPage,
    ErrorBody,
    FeedProblem,
    Property,
)
from connector.settings import Secret

__all__ = [
    "CONTACT_NOT_FOUND",
    "MAX_BATCH",
    "MAX_PAGE_SIZE",
    "SpotlerClient",
    "format_feed_date",
]

_T = TypeVar("_T")
_Item = TypeVar("_Item", Contact, Bounce)

MAX_BATCH = 100  # contacts per POST contact/list
MAX_PAGE_SIZE = 10_000
CONTACT_NOT_FOUND = "CONTACT_NOT_FOUND"

_CONTACT = msgspec.json.Decoder(Contact)
_CONTACTS = msgspec.json.Decoder(ContactsPage | list[Contact])
_RESULTS = msgspec.json.Decoder(list[AddContactResult])
_PROPERTIES = msgspec.json.Decoder(list[Property])
_ERROR = msgspec.json.Decoder(ErrorBody)
_ENCODER = msgspec.json.Encoder()


def format_feed_date(moment: datetime) -> str:
    """``fromDate``/``toDate``: ISO 8601 with its offset, whole seconds."""
    if moment.tzinfo is None:
        raise ValueError("feed windows need timezone-aware datetimes")
    return moment.isoformat(timespec="seconds")


def _feed_seconds(start: datetime, end: datetime) -> tuple[int, int]:
    """Whole seconds that cover ``[start, end]``: the start rounded down, the end up."""
    for moment in (start, end):
        format_feed_date(moment)  # refuses a naive datetime before anything is sent
    # Rounding the end down would leave out what changed in its last fraction of a second.
    return math.floor(start.timestamp()), math.ceil(end.timestamp())


def _contacts_of(content: bytes) -> list[Contact]:
    page = _CONTACTS.decode(content)
    return page if isinstance(page, list) else page.contacts


def _classify(response: httpx.Response, what: str, key: str | None) -> ConnectorError:
    body: ErrorBody | None = None
    if response.content.strip():
        try:
            body = _ERROR.decode(response.content)
        except msgspec.DecodeError:
            body = None
    said = redact(body.message) if body else ""
    status = response.status_code
    if body and (status == 400 or (status == 404 and body.errorType)):
        return RecordRejected(
            f"{what}: HTTP {status} {body.errorType or 'rejected'}: {said}",
            key=key,
            code=body.errorType or None,
            status=status,
            detail=said or None,
        )
    if body and body.errorType:
        said = f"{body.errorType}: {said}"
    return status_error(response, what, said or None)


class SpotlerClient:
    """Spotler Mail+ REST (integrationservice), signed with the account's key and secret."""

    def __init__(
        self,
        base_url: str,
        key: str,
        secret: Secret | str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        pace: Callable[[], object] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._signer = OAuth1Signer(key, secret)
        self._pace = pace
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            headers={"Accept": "application/json", "User-Agent": "afas-spotler-connector"},
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"SpotlerClient({self.base_url!r}, key={self._signer.key!r})"

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: msgspec.Struct | None = None,
        key: str | None = None,
    ) -> httpx.Response:
        content = None if body is None else _ENCODER.encode(body)
        headers = None if content is None else {"Content-Type": "application/json"}
        request = self._http.build_request(
            method, path, params=params, content=content, headers=headers
        )
        request.headers["Authorization"] = self._signer.authorization(method, str(request.url))
        what = f"Spotler {method} {redact(unquote(path))}"
        if self._pace is not None:
            self._pace()  # may raise RateLimited: nothing was sent
        response = send(self._http, request, what=what)
        if response.is_success:
            return response
        raise _classify(response, what, key)

    def _decode(self, response: httpx.Response, decode: Callable[[bytes], _T], what: str) -> _T:
        try:
            return decode(response.content)
        except msgspec.DecodeError as exc:
            raise FatalError(
                f"{what}: unexpected answer ({exc})", status=response.status_code
            ) from None

    def _page(
        self, path: str, params: dict[str, str], decode: Callable[[bytes], list[_T]]
    ) -> list[_T]:
        response = self._call("GET", path, params=params)
        if not response.content.strip():
            return []
        return self._decode(response, decode, f"Spotler GET {path}")

    def _pages(self, path: str, params: dict[str, str], page_size: int) -> Iterator[Contact]:
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        after = 0
        while True:
            paged = {**params, "after": str(after), "pageSize": str(size)}
            items = self._page(path, paged, _contacts_of)
            yield from items
            if len(items) < size:
                return
            after += len(items)

    def _feed(
        self,
        path: str,
        feed: str,
        window: tuple[datetime, datetime],
        page_size: int,
        decode: Callable[[bytes], list[Entry[_Item]]],
    ) -> Iterator[_Item | FeedProblem]:
        start, end = window
        lo, hi = _feed_seconds(start, end)

        def fetch(lo_s: int, hi_s: int, after: int, size: int) -> list[Entry[_Item]]:
            params = {
                "fromDate": format_feed_date(datetime.fromtimestamp(lo_s, start.tzinfo)),
                "toDate": format_feed_date(datetime.fromtimestamp(hi_s, end.tzinfo)),
                "after": str(after),
                "pageSize": str(size),
            }
            return self._page(path, params, decode)

        reader = WindowReader(fetch, feed=feed, page_size=page_size, max_page_size=MAX_PAGE_SIZE)
        return reader.read(lo, hi)

    def upsert(self, contact: Contact) -> None:
        """Create or update one contact; properties merged, permissions merged per bit."""
        if not contact.externalId:
            raise ValueError("a contact needs an externalId")
        request = ContactRequest(update=True, purge=False, contact=contact.for_write())
        self._call("POST", "contact", body=request, key=contact.externalId)

    def upsert_many(self, contacts: Sequence[Contact]) -> list[AddContactResult]:
        """Create or update up to 100 contacts; one result per contact, in order."""
        if len(contacts) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} contacts per call, got {len(contacts)}")
        if not contacts:
            return []
        if any(not c.externalId for c in contacts):
            raise ValueError("every contact needs an externalId")
        request = AddContactsRequest(
            update=True, purge=False, contacts=[c.for_write() for c in contacts]
        )
        response = self._call("POST", "contact/list", body=request)
        if not response.content.strip():
            # A bare 2xx without results: nothing was refused.
            return [AddContactResult(c.externalId, "OK") for c in contacts]
        results = self._decode(response, _RESULTS.decode, "Spotler POST contact/list")
        # Messages end up in dead letters and logs: no e-mail addresses there.
        return [
            AddContactResult(r.externalId, r.code, redact(r.message) if r.message else r.message)
            for r in results
        ]

    def update(self, external_id: str, contact: Contact) -> None:
        """Update an existing contact (404 when it does not exist)."""
        if contact.externalId and contact.externalId != external_id:
            raise ValueError("the contact's externalId differs from the one to update")
        written = contact.for_write()
        written.externalId = external_id
        request = ContactRequest(update=True, purge=False, contact=written)
        self._call("PUT", f"contact/{quote(external_id, safe='')}", body=request, key=external_id)

    def get(self, external_id: str) -> Contact | None:
        """One contact, or None when Spotler does not know it."""
        path = f"contact/{quote(external_id, safe='')}"
        try:
            response = self._call("GET", path, key=external_id)
        except RecordRejected as exc:
            if exc.status == 404 and exc.code == CONTACT_NOT_FOUND:
                return None
            raise
        return self._decode(response, _CONTACT.decode, f"Spotler GET {redact(unquote(path))}")

    def iter_updates(
        self, start: datetime, end: datetime, *, page_size: int = 1000
    ) -> Iterator[Contact | FeedProblem]:
        """Contacts changed within ``[start, end]``, none skipped, each version once.

        A malformed item comes as a FeedProblem in its place; the rest goes on.
        """
        window = (start, end)
        return self._feed("contact/updates/list", "updates", window, page_size, contact_entries)

    def iter_bounces(
        self, start: datetime, end: datetime, *, page_size: int = 1000
    ) -> Iterator[Bounce | FeedProblem]:
        """Bounces within ``[start, end]``, none skipped, each version once.

        A malformed item comes as a FeedProblem in its place; the rest goes on.
        """
        window = (start, end)
        return self._feed("contact/bounces/list", "bounces", window, page_size, bounce_entries)

    def properties(self) -> list[Property]:
        """The account's contact fields, permissions (with their bits) included."""
        response = self._call("GET", "contact/properties/list")
        return self._decode(response, _PROPERTIES.decode, "Spotler GET contact/properties/list")

    def search(self, query: str, *, page_size: int = 100) -> list[Contact]:
        """Every contact matching ``MPSearchQuery`` (``<property>=<value>``)."""
        return list(self._pages("contact/search", {"MPSearchQuery": query}, page_size))

    def anonymize(self, external_id: str) -> None:
        """Clear a contact's personal data; the record itself stays."""
        path = f"contact/anonymize/{quote(external_id, safe='')}"
        self._call("PUT", path, key=external_id)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SpotlerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
