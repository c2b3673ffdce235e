"""Reading a GetConnector by its key: keyset pages and lookups of many ids.

Keyset paging orders by the key column and asks for ``key > last`` with
``skip=0``: a row that leaves the result during a walk moves no other row out
of sight (with a growing skip every later row shifts one place forward and one
is never read), and no page pays for a deep skip, which AFAS calls slow above
about 100,000. Both need a unique key, one row per value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from connector.clients.afas_filter import Condition, Filter, Op
from connector.errors import FatalError

__all__ = [
    "as_contact_id",
    "fill_batches",
    "ids_filter",
    "keyset_filter",
    "last_key",
    "page_params",
    "rows_by_key",
]


def page_params(
    flt: Filter | None, order_by: Sequence[str], skip: int, take: int
) -> dict[str, str]:
    """The query parameters of one GetConnector page."""
    params = {"skip": str(skip), "take": str(take)}
    if order_by:
        params["orderbyfieldids"] = ",".join(order_by)
    if flt is not None:
        params.update(flt.to_params())
    return params


def keyset_filter(flt: Filter | None, key: str, after: object | None) -> Filter | None:
    """The caller's filter, AND-ed with ``key > after`` once there is an ``after``."""
    if after is None:
        return flt
    beyond = Condition(key, Op.GT, after)
    return Filter.all_of(beyond) if flt is None else flt.with_all(beyond)


def last_key(rows: Sequence[dict[str, Any]], key: str, connector_id: str) -> object:
    """The key value of a page's last row, as it came (an int stays an int).

    A missing value is fatal: ``key > nothing`` cannot be asked, and asking
    the same page again would never end. (Rows without one sort first, so
    only a page made of them ends on one.)
    """
    value = rows[-1].get(key)
    if value is None or value == "":
        raise FatalError(
            f"AFAS GetConnector {connector_id}: a row has no value in key column {key}, "
            "so paging on that column cannot go on"
        )
    return value


def as_contact_id(text: str) -> int | None:
    """An id as AFAS writes a ContactId (ASCII digits, no leading zero) as an int, else None.

    ``str.isdigit`` also accepts "²" and other digits ``int()`` refuses or
    reads differently; such an id cannot name an AFAS contact.
    """
    if not (text.isascii() and text.isdecimal()):
        return None
    number = int(text)
    return number if str(number) == text else None


def ids_filter(key: str, ids: Iterable[int]) -> Filter:
    """``key = id`` for each id, OR-ed."""
    return Filter.any_of(*[(Condition(key, Op.EQ, value),) for value in ids])


def fill_batches(items: Sequence[int], fits: Callable[[Sequence[int]], bool]) -> Iterator[list[int]]:
    """Consecutive batches, each as long as ``fits`` allows (at least one item each)."""
    batch: list[int] = []
    for item in items:
        if batch and not fits([*batch, item]):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def rows_by_key(
    rows: Sequence[dict[str, Any]], key: str, connector_id: str, *, asked: int
) -> dict[str, dict[str, Any]]:
    """The rows of a lookup of ``asked`` ids by their key value as text.

    More rows than ids means the key does not name one row: fatal, or the
    answer would silently hold one of several rows for an id.
    """
    if len(rows) > asked:
        raise FatalError(
            f"AFAS GetConnector {connector_id}: more rows than ids asked for, "
            f"so key column {key} does not hold one row per contact"
        )
    return {str(row.get(key)): row for row in rows}
