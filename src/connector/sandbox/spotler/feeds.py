"""Query parameters and page shapes of the windowed, paged feeds.

``fromDate``/``toDate`` are ISO-8601, with or without an offset (no offset
means Europe/Amsterdam local time, the service's zone), date-only allowed.
The window is inclusive at both ends: ``fromDate <= lastChanged <= toDate``
(to the millisecond), so a client that chains windows with an overlap never
misses a change; it deduplicates on ``(externalId, lastChanged)``.
Paging is by offset: ``after`` (default 0) and ``pageSize`` (default 1000,
1..10000). A page's ``paging.after`` is the offset of the next page and
``paging.next`` its URL, absent after the last page. Items come in
(stamp, externalId) order; the ``feeds_by_id`` setting orders them by
externalId instead, since Spotler does not document its order.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from connector.sandbox.spotler.wire import ApiError, Paging

__all__ = [
    "AMSTERDAM",
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "PageRequest",
    "paging",
    "parse_instant",
    "parse_window",
]

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
DEFAULT_AFTER = 0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PageRequest(msgspec.Struct, frozen=True):
    after: int
    size: int

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> PageRequest:
        after = _int(query.get("after"), DEFAULT_AFTER)
        if after is None or after < 0:
            raise ApiError(400, "INVALID_PARAMS", "Invalid after")
        size = _int(query.get("pageSize"), DEFAULT_PAGE_SIZE)
        if size is None or not 1 <= size <= MAX_PAGE_SIZE:
            raise ApiError(400, "INVALID_PARAMS", f"Invalid pageSize (max is {MAX_PAGE_SIZE})")
        return cls(after, size)



def _int(text: str | None, default: int) -> int | None:
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        return None


def parse_instant(text: str | None, name: str) -> int:
    """An ISO-8601 query value as epoch milliseconds."""
    invalid = ApiError(400, "INVALID_PARAMS", f"Invalid {name} or no {name} given")
    if not text:
        raise invalid
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=AMSTERDAM)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def parse_window(query: Mapping[str, str]) -> tuple[int, int]:
    """``fromDate`` and ``toDate`` as epoch milliseconds, both inclusive."""
    lo = parse_instant(query.get("fromDate"), "fromDate")
    hi = parse_instant(query.get("toDate"), "toDate")
    if lo > hi:
        raise ApiError(400, "INVALID_PARAMS", "fromDate is after toDate")
    return lo, hi


def paging(url: str, page: PageRequest, count: int, total: int) -> Paging:
    """The ``paging`` object of a page of ``count`` items out of ``total``."""
    following = page.after + count
    if following >= total or count == 0:
        return Paging(after=following)
    return Paging(after=following, next=_with_after(url, following))


def _with_after(url: str, after: int) -> str:
    base, _, query = url.partition("?")
    kept = [p for p in query.split("&") if p and not p.startswith("after=")]
    return f"{base}?{'&'.join([*kept, f'after={after}'])}"
