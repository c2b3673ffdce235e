"""Ordered indexes behind the change and bounce feeds, so a page is a slice."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["BounceKey", "BounceLog", "ChangeIndex", "page_of", "window"]

# (date ms, externalId, sequence number, type, encryptedActId)
BounceKey = tuple[int, str, int, str, str | None]
K = TypeVar("K", bound=tuple[Any, ...])


def window(keys: Sequence[tuple[Any, ...]], lo_ms: int, hi_ms: int) -> tuple[int, int]:
    """Start and end positions of the keys whose first element is in [lo_ms, hi_ms]."""
    return bisect_left(keys, (lo_ms,)), bisect_left(keys, (hi_ms + 1,))


def page_of(
    keys: Sequence[K], start: int, end: int, after: int, size: int, *, by_id: bool
) -> Sequence[K]:
    """Positions ``after`` … ``after + size`` of the keys ``start:end``, in feed order.

    The feed is in stamp order unless ``by_id`` (externalId first): Spotler does
    not document its order, and a client must not depend on it.
    """
    if by_id:
        return sorted(keys[start:end], key=lambda k: (k[1], k[0]))[after : after + size]
    return keys[start + after : min(end, start + after + size)]


class ChangeIndex:
    """``(lastChanged, externalId)`` pairs in feed order.

    A write appends its new pair and leaves the old one behind; stale pairs are
    dropped (and the list re-sorted, which is near-linear for the almost sorted
    list) only when a feed is read, so a write costs O(1).
    """

    def __init__(self) -> None:
        self._keys: list[tuple[int, str]] = []
        self._stale = 0
        self._sorted = True

    def __len__(self) -> int:
        return len(self._keys)

    def clear(self) -> None:
        self._keys.clear()
        self._stale = 0
        self._sorted = True

    def add(self, last_changed: int, external_id: str, *, replaces: bool) -> None:
        key = (last_changed, external_id)
        if self._keys and key < self._keys[-1]:
            self._sorted = False
        self._keys.append(key)
        if replaces:
            self._stale += 1

    def needs_compaction(self, live: int) -> bool:
        return self._stale > live + 1024

    def compact(self, is_current: Callable[[int, str], bool]) -> None:
        if self._stale:
            self._keys = [k for k in self._keys if is_current(k[0], k[1])]
            self._stale = 0
        if not self._sorted:
            self._keys.sort()
            self._sorted = True

    def ordered(self, is_current: Callable[[int, str], bool]) -> list[tuple[int, str]]:
        """The compacted, sorted pairs (the list itself: do not modify)."""
        self.compact(is_current)
        return self._keys


class BounceLog:
    """Bounces in ``(date, externalId, sequence)`` order."""

    def __init__(self) -> None:
        self.keys: list[BounceKey] = []

    def add(self, key: BounceKey) -> None:
        insort(self.keys, key)

    def clear(self) -> None:
        self.keys.clear()
