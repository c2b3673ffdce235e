"""Reading Spotler's change and bounce feeds so that no item is skipped.

Offset paging (``after``/``pageSize``) over a list that changes while it is
read can skip: a contact edited between two page requests leaves its place,
every later item moves one position forward and one is never read. This
reader never relies on two requests agreeing with each other:

- A window ``[lo, hi]`` (whole seconds, both inclusive, as ``fromDate`` and
  ``toDate`` are sent) is asked for with ``after=0``. A page that comes back
  *not full* is the whole window, read by one atomic request: complete,
  whatever order the feed is in.
- A *full* page is not trusted. The window is split in ``[lo, mid]`` and
  ``[mid, hi]``, each read the same way (depth first, in time order). Every
  item of the window lies in one of the halves, so by induction every item
  that stays put during the read is yielded. The halves share the second
  ``mid`` (Spotler may compare to the millisecond or to the second), so an
  item stamped within it can come twice: it is dropped the second time, on
  ``(externalId, lastChanged)`` for updates and ``(externalId, date, type)``
  for bounces. Only items on a shared boundary (or without a readable stamp,
  or outside their window) are remembered, and a second is forgotten once the
  read has moved past it, so the memory holds a few seconds' worth of items
  (all of a crowded second's, below).
- ``mid`` is any second strictly inside the window, so it is chosen for cost
  only (``_split``): just inside the last stamp of a page in stamp order
  (that part then comes back short in one request; a guess proved wrong
  turns this off), else the median stamp of the page, kept off the edges.
- A window one second wide that is still full is asked for again with the
  largest page; still full, it is paged by offset with an overlap of re-read
  items (one warning line). Each next page must re-read one of the previous
  page's last items; when none comes back, more items left the window than
  the overlap covers and the read fails with RetriableError rather than skip.

Nothing here assumes the feed is sorted. A window with fewer items than a
page costs one request, as plain paging does; a backlog of K items costs
about 2 K/page requests in stamp order, 3-4 K/page otherwise or when one
second holds half a page or more.

Each page is decoded as a list of raw items, then each item on its own: a
malformed item becomes a ``FeedProblem`` in its place (the field and why,
never the value) and the rest of the page goes on.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Hashable, Iterator
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, Generic, TypeVar

import msgspec

from connector.errors import FatalError, RetriableError
from connector.redaction import redact
from connector.schemas.spotler import Bounce, Contact, FeedProblem, epoch_ms, permissions_problem

__all__ = ["Entry", "Fetch", "WindowReader", "bounce_entries", "contact_entries"]

_Item = TypeVar("_Item", Contact, Bounce)

# (dedup key, stamp in whole seconds or None, the item or its problem)
Entry = tuple[Hashable, int | None, _Item | FeedProblem]
# (lo s, hi s, after, page size) -> the page's entries
Fetch = Callable[[int, int, int, int], list[Entry[_Item]]]

_log = logging.getLogger(__name__)

_OVERLAP_SHARE = 10  # offset paging re-reads a tenth of each page


class _Contacts(msgspec.Struct):
    contacts: list[msgspec.Raw] = []


class _Bounces(msgspec.Struct):
    bounces: list[msgspec.Raw] = []


class _Loose(msgspec.Struct):
    """What a malformed item still shows: its id and stamps, of any type."""

    externalId: Any = None
    lastChanged: Any = None
    date: Any = None
    contact: Any = None


_CONTACT_PAGE = msgspec.json.Decoder(_Contacts | list[msgspec.Raw])
_BOUNCE_PAGE = msgspec.json.Decoder(_Bounces | list[msgspec.Raw])
_CONTACT = msgspec.json.Decoder(Contact)
_BOUNCE = msgspec.json.Decoder(Bounce)
_LOOSE = msgspec.json.Decoder(_Loose)
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")
_QUOTED = re.compile(r"'[^']*'")


def contact_entries(content: bytes) -> list[Entry[Contact]]:
    """The items of one ``contact/updates/list`` page, each decoded on its own."""
    page = _CONTACT_PAGE.decode(content)
    return [_contact_entry(raw) for raw in (page if isinstance(page, list) else page.contacts)]


def bounce_entries(content: bytes) -> list[Entry[Bounce]]:
    """The items of one ``contact/bounces/list`` page, each decoded on its own."""
    page = _BOUNCE_PAGE.decode(content)
    return [_bounce_entry(raw) for raw in (page if isinstance(page, list) else page.bounces)]


def _contact_entry(raw: msgspec.Raw) -> Entry[Contact]:
    try:
        contact = _CONTACT.decode(raw)
    except msgspec.ValidationError as exc:
        loose = _loose(raw)
        return _problem("updates", raw, loose.externalId, loose.lastChanged, *_where(str(exc)))
    trouble = _contact_trouble(contact)
    if trouble is not None:
        return _problem("updates", raw, contact.externalId, contact.lastChanged, *trouble)
    return (contact.externalId, contact.lastChanged), _second(contact.lastChanged), contact


def _bounce_entry(raw: msgspec.Raw) -> Entry[Bounce]:
    try:
        bounce = _BOUNCE.decode(raw)
    except msgspec.ValidationError as exc:
        loose = _loose(raw)
        external_id = loose.contact.get("externalId") if isinstance(loose.contact, dict) else None
        return _problem("bounces", raw, external_id, loose.date, *_where(str(exc)))
    trouble = _contact_trouble(bounce.contact)
    if trouble is not None:
        field, reason = trouble
        external_id = bounce.contact.externalId
        return _problem("bounces", raw, external_id, bounce.date, f"contact.{field}", reason)
    key = (bounce.contact.externalId, bounce.date, bounce.type)
    return key, _second(bounce.date), bounce


def _contact_trouble(contact: Contact) -> tuple[str, str] | None:
    if not contact.externalId.strip():
        return "externalId", "is empty"
    return permissions_problem(contact.properties)


def _loose(raw: msgspec.Raw) -> _Loose:
    try:
        return _LOOSE.decode(raw)
    except msgspec.ValidationError:  # not even an object
        return _Loose()


def _problem(
    feed: str, raw: msgspec.Raw, external_id: object, stamp: object, field: str, reason: str
) -> Entry[Any]:
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    shown = external_id if isinstance(external_id, str) and external_id.strip() else None
    ms = epoch_ms(stamp) if isinstance(stamp, int) and not isinstance(stamp, bool) else None
    # The raw item's digest tells a re-read of the same item from another bad one,
    # without keeping the item (and its personal data) in memory.
    key = ("problem", hashlib.blake2b(bytes(raw), digest_size=16).digest())
    return key, _second(ms), FeedProblem(feed, shown, field, reason)


def _where(message: str) -> tuple[str, str]:
    """The field and the reason of a msgspec validation message; values masked."""
    at = _AT.search(message)
    path, reason = (at["path"], message[: at.start()]) if at else ("", message)
    missing = _MISSING.match(reason)
    if missing:
        path = f"{path}.{missing['name']}" if path else missing["name"]
    # msgspec names types, not values, except for a few (enums): mask those anyway.
    return path or "item", redact(_QUOTED.sub("<value>", reason))


def _second(ms: int | None) -> int | None:
    return None if ms is None else ms // 1000


class _Memory:
    """The dedup keys of the items that may be read twice, by their stamp's second."""

    def __init__(self) -> None:
        self.boundaries: set[int] = set()
        self._keys: dict[int | None, set[Hashable]] = {}

    def forget_before(self, second: int) -> None:
        # Windows are read in time order: no later window reaches back before ``second``.
        for old in [s for s in self._keys if s is not None and s < second]:
            del self._keys[old]
        self.boundaries = {b for b in self.boundaries if b >= second}

    def fresh(
        self, entries: list[Entry[_Item]], lo: int, hi: int, *, every: bool = False
    ) -> Iterator[Entry[_Item]]:
        """The entries not yielded before; remembers those that may come again."""
        for entry in entries:
            key, second, _ = entry
            bucket = self._keys.get(second)
            if bucket is not None and key in bucket:
                continue
            if every or second is None or second in self.boundaries or not lo <= second <= hi:
                self._keys.setdefault(second, set()).add(key)
            yield entry


def _split(
    lo: int, hi: int, seconds: list[int | None], *, trust_order: bool
) -> tuple[int, tuple[int, int] | None]:
    """Where to split a full window ``hi - lo >= 2``, and the half expected to come back short.

    A page in stamp order is probably the window's start (or end): the split
    goes just inside its last stamp, so the part it covers comes back in one
    short page. Any other page is a sample of the window: the split goes to its
    median stamp, kept off the window's edges so that a window always shrinks
    by an eighth or more. Only the cost depends on these guesses.
    """
    stamps = [second for second in seconds if second is not None]
    if not stamps:
        return lo + (hi - lo) // 2, None
    if trust_order:
        pairs = list(pairwise(stamps))
        if all(a <= b for a, b in pairs) and lo < stamps[-1] - 1 < hi:
            return stamps[-1] - 1, (lo, stamps[-1] - 1)
        if all(a >= b for a, b in pairs) and lo < stamps[-1] + 1 < hi:
            return stamps[-1] + 1, (stamps[-1] + 1, hi)
    edge = max(1, (hi - lo) // 8)
    return min(max(sorted(stamps)[len(stamps) // 2], lo + edge), hi - edge), None


class WindowReader(Generic[_Item]):
    """Reads a feed window completely, each item once (see the module docstring)."""

    def __init__(self, fetch: Fetch[_Item], *, feed: str, page_size: int, max_page_size: int) -> None:
        self._fetch: Fetch[_Item] = fetch
        self.feed = feed
        self.max_page_size = max(1, max_page_size)
        self.page_size = max(1, min(page_size, self.max_page_size))

    def read(self, lo: int, hi: int) -> Iterator[_Item | FeedProblem]:
        """Every item stamped within ``[lo, hi]`` (epoch seconds, inclusive)."""
        memory = _Memory()
        pending = [(lo, hi)]
        sorted_feed = True  # until a page that looked sorted proves otherwise
        shorts: set[tuple[int, int]] = set()
        while pending:
            window = pending.pop()
            lo_w, hi_w = window
            memory.forget_before(lo_w)
            entries = self._fetch(lo_w, hi_w, 0, self.page_size)
            full = len(entries) >= self.page_size
            if window in shorts:
                shorts.discard(window)
                sorted_feed = sorted_feed and not full
            if not full:
                yield from (item for _, _, item in memory.fresh(entries, lo_w, hi_w))
            elif hi_w - lo_w >= 2:
                seconds = [second for _, second, _ in entries]
                mid, short = _split(lo_w, hi_w, seconds, trust_order=sorted_feed)
                if short is not None:
                    shorts.add(short)
                memory.boundaries.add(mid)
                pending += [(mid, hi_w), (lo_w, mid)]  # the earlier half on top
            else:
                yield from self._crowded(lo_w, hi_w, entries, memory)

    def _crowded(
        self, lo: int, hi: int, entries: list[Entry[_Item]], memory: _Memory
    ) -> Iterator[_Item | FeedProblem]:
        """A window that cannot be split and still fills a page."""
        size = self.max_page_size
        if self.page_size < size:
            entries = self._fetch(lo, hi, 0, size)
            if len(entries) < size:
                yield from (item for _, _, item in memory.fresh(entries, lo, hi))
                return
        overlap = max(1, size // _OVERLAP_SHARE) if size > 1 else 0
        _log.warning(
            "Spotler %s feed: more than %d items in the second %s; paging it by offset, overlap %d",
            self.feed, size, _instant(lo), overlap,
        )
        after = 0
        while True:
            yield from (item for _, _, item in memory.fresh(entries, lo, hi, every=True))
            if len(entries) < size:
                return
            keys = [key for key, _, _ in entries]
            tail = set(keys[len(keys) - overlap :])
            after += size - overlap
            entries = self._fetch(lo, hi, after, size)
            if [key for key, _, _ in entries] == keys:
                raise FatalError(
                    f"Spotler {self.feed} feed: the page at offset {after} repeats the one before"
                )
            if tail and entries and not any(key in tail for key, _, _ in entries):
                # Each item that leaves the window moves the rest one place forward: more of
                # them than the overlap, and an item could have slipped between two pages.
                raise RetriableError(
                    f"Spotler {self.feed} feed: more than {overlap} items left the second "
                    f"{_instant(lo)} while it was paged; read it again"
                )


def _instant(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).isoformat()
