"""GetConnector reads: skip/take, ordering, filters, and a cache that makes deep pages cheap.

Each definition has a view: the typed row of every listed contact, kept up to
date incrementally (a write marks the contacts it affects), and the JSON of
each row, encoded once with msgspec. The filtered and sorted order of a query
is cached per (connector, definition, data version, filter, order), so every
page of a walk through 100,000 rows is a slice plus a join, whatever the skip.
A keyset page (``key > last`` on the sort key) reuses the order of its query
without that condition and bisects it, so a keyset walk is as cheap.

That is the sandbox's own cost. What a deep skip costs on AFAS is modelled on
top (``skip_cost``, applied by the app before it takes the state lock): AFAS
documents skip/take above about 100,000 rows as "generally no longer
acceptable" and advises splitting the set with filters, i.e. ``key > last``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from connector.sandbox.afas.catalogue import Catalogue, DataType
from connector.sandbox.afas.clock import format_afas
from connector.sandbox.afas.definitions import ConnectorDef, resolve_columns, rows_builder
from connector.sandbox.afas.errors import UNEXPECTED, AfasError
from connector.sandbox.afas.filters import (
    Condition,
    comparison_value,
    compile_filters,
    parse_compact,
    parse_json,
)
from connector.sandbox.afas.model import Contact, Store

__all__ = ["MAX_QUERY", "GetQuery", "QueryTooLong", "View", "parse_query"]

MAX_QUERY = 2049  # characters from the "?" on; longer is answered with 404
_CACHE_SIZE = 32


class QueryTooLong(Exception):
    """The query string is over AFAS's limit: HTTP 404."""


class GetQuery(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed GetConnector request."""

    skip: int = 0
    take: int = 100
    order: tuple[str, ...] = ()
    compact: tuple[str, str | None, str | None] | None = None
    filterjson: str | None = None


def _number(text: str | None, default: int) -> int | None:
    if text is None or text.strip() == "":
        return default
    try:
        return int(text.strip())
    except ValueError:
        return None


def parse_query(raw: bytes) -> GetQuery:
    """Parameters are matched case-insensitively; separators may be percent-encoded."""
    if len(raw) + 1 > MAX_QUERY:
        raise QueryTooLong
    params: dict[str, str] = {}
    for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        params.setdefault(key.lower(), value)
    # Profit treats a skip below -1 or a non-number as 0 (reference §3.1).
    skip = _number(params.get("skip"), 0)
    skip = 0 if skip is None or skip < -1 else skip
    take = _number(params.get("take"), 100)
    if take is None or take < -1 or (take == -1 and skip > 0):
        raise AfasError("An unexpected error has occurred.", UNEXPECTED)
    order = tuple(f.strip() for f in params.get("orderbyfieldids", "").split(",") if f.strip())
    fields = params.get("filterfieldids")
    compact = None
    if fields:
        compact = (fields, params.get("filtervalues"), params.get("operatortypes"))
    return GetQuery(
        skip=skip,
        take=take,
        order=order,
        compact=compact,
        filterjson=params.get("filterjson") or None,
    )


class View:
    """A definition's rows over the store, refreshed incrementally."""

    def __init__(self, name: str, defn: ConnectorDef, store: Store, catalogue: Catalogue) -> None:
        self.name = name
        self.defn = defn
        self.columns = resolve_columns(defn, catalogue)
        self.store = store
        self.index: dict[str, tuple[int, DataType]] = {c.id: (i, c.dataType) for i, c in enumerate(self.columns)}
        self._types = frozenset(defn.contact_types)
        self._build = rows_builder(store, self.columns)
        self._keys = [c.id for c in self.columns]
        self._dates = [i for i, c in enumerate(self.columns) if c.dataType == "date"]
        self._rows: dict[int, tuple[Any, ...]] = {}
        self._json: dict[int, bytes] = {}
        self._dirty: set[int] | None = None  # None: rebuild everything
        self._orders: OrderedDict[tuple[Any, ...], list[int]] = OrderedDict()
        store.subscribe(self.mark)

    def close(self) -> None:
        self.store.unsubscribe(self.mark)

    def mark(self, contact_ids: Iterable[int]) -> None:
        if self._dirty is not None:
            self._dirty.update(contact_ids)

    def rows(self) -> dict[int, tuple[Any, ...]]:
        contacts = self.store.contacts
        types = self._types
        if self._dirty is None:
            listed = [c for c in contacts.values() if c.kind in types]
            self._rows = dict(zip([c.cd_id for c in listed], self._build(listed), strict=True))
            self._json.clear()
            self._dirty = set()
        elif self._dirty:
            changed: list[Contact] = []
            for cid in self._dirty:
                self._json.pop(cid, None)
                contact = contacts.get(cid)
                if contact is not None and contact.kind in types:
                    changed.append(contact)
                else:
                    self._rows.pop(cid, None)
            for contact, row in zip(changed, self._build(changed), strict=True):
                self._rows[contact.cd_id] = row
            self._dirty = set()
        return self._rows

    def row(self, contact_id: int) -> dict[str, Any] | None:
        values = self.rows().get(contact_id)
        return None if values is None else msgspec.json.decode(self._encode(contact_id, values))

    def _encode(self, cid: int, values: tuple[Any, ...]) -> bytes:
        found = self._json.get(cid)
        if found is None:
            shown = list(values)
            for i in self._dates:
                if shown[i] is not None:
                    shown[i] = format_afas(shown[i])
            found = msgspec.json.encode(dict(zip(self._keys, shown, strict=True)))
            self._json[cid] = found
        return found

    def window(self, query: GetQuery) -> tuple[list[int], int]:
        """A cached order of contact ids, and where the query's rows start in it.

        A keyset page (every group ending in ``key > value`` on the first sort
        column) starts where that value falls in the order of the same query
        without the condition: a bisect, so each page of a walk reuses one
        order instead of filtering and sorting anew for every new ``value``.
        """
        rows = self.rows()
        sources = [
            groups
            for groups in (
                parse_compact(*query.compact) if query.compact is not None else [],
                parse_json(query.filterjson) if query.filterjson else [],
            )
            if groups
        ]
        split = self._keyset(query.order, sources[0]) if len(sources) == 1 else None
        if split is None:
            return self._order(query.order, sources), 0
        base, index, text, value = split
        ids = self._order(query.order, [base] if base else [])
        start = bisect_right(ids, (1, value), key=lambda cid: _sort_key(rows[cid][index], text))
        return ids, start

    def _keyset(
        self, order: tuple[str, ...], groups: list[list[Condition]]
    ) -> tuple[list[list[Condition]], int, bool, Any] | None:
        """(the groups without it, column, is text, value) when each group ends in ``first > value``."""
        last = {group[-1] for group in groups if group}
        if not order or order[0].startswith("-") or len(last) != 1 or not all(groups):
            return None
        cond = last.pop()
        # A "%" turns any comparison into a LIKE (see filters): no order to bisect.
        if cond.op != 4 or "%" in cond.value:
            return None
        try:
            index, data_type = self._column(order[0].lstrip("+").strip())
            if self._column(cond.field)[0] != index:
                return None
            value = comparison_value(cond, data_type)
        except AfasError:
            return None  # the plain evaluation reports it, as Profit would
        rest = [group[:-1] for group in groups]
        # (a AND k) OR (b AND k) is (a OR b) AND k; a group that was only k holds for every row.
        return (rest if all(rest) else []), index, data_type == "string", value

    def _order(self, order: tuple[str, ...], sources: list[list[list[Condition]]]) -> list[int]:
        """Contact ids matching every source (an OR of AND-groups), in ``order`` (cached)."""
        rows = self.rows()
        key = (self.store.version, order, tuple(tuple(tuple(g) for g in groups) for groups in sources))
        cached = self._orders.get(key)
        if cached is not None:
            self._orders.move_to_end(key)
            return cached
        predicates = [compile_filters(groups, self.index) for groups in sources]
        ids = [cid for cid, row in rows.items() if all(p(row) for p in predicates)]
        for field in reversed(order):
            descending = field.startswith("-")
            name = field.lstrip("-+").strip()
            index, data_type = self._column(name)
            text = data_type == "string"
            ids.sort(key=lambda cid: _sort_key(rows[cid][index], text), reverse=descending)
        self._orders[key] = ids
        if len(self._orders) > _CACHE_SIZE:
            self._orders.popitem(last=False)
        return ids

    def _column(self, name: str) -> tuple[int, DataType]:
        found = self.index.get(name) or {k.casefold(): v for k, v in self.index.items()}.get(name.casefold())
        if found is None:
            raise AfasError(f"Connector field '{name}' not found", UNEXPECTED)
        return found

    def page(self, query: GetQuery) -> bytes:
        """The response body: ``{"skip":…,"take":…,"rows":[…]}`` with skip and take echoed."""
        ids, start = self.window(query)
        everything = query.skip == -1 or query.take == -1
        # Profit answers take=0 with one row (reference §3.1).
        first = start + max(query.skip, 0)
        chosen = ids[start:] if everything else ids[first : first + max(query.take, 1)]
        rows = self._rows
        parts = [self._encode(cid, rows[cid]) for cid in chosen]
        head = b'{"skip":%d,"take":%d,"rows":[' % (query.skip, query.take)
        return head + b",".join(parts) + b"]}"


def _sort_key(value: Any, text: bool) -> tuple[int, Any]:
    # NULLs first ascending and last descending, as SQL Server sorts them.
    if value is None:
        return (0, 0)
    return (1, value.casefold() if text else value)
