"""The sandbox's own clock: real time, shifted, set to an instant, or frozen."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import msgspec

__all__ = ["ClockState", "SandboxClock"]


class ClockState(msgspec.Struct, kw_only=True):
    """What ``GET /_sandbox/clock`` reports."""

    now: str
    now_ms: int
    offset_s: float
    frozen: bool


class SandboxClock:
    """Epoch milliseconds for ``created``, ``lastChanged`` and bounce dates.

    OAuth timestamps are checked against the real clock instead: clients sign
    with their own OS time, whatever the sandbox pretends the date is.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset_s = 0.0
        self._frozen_at: float | None = None

    def now_s(self) -> float:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() + self._offset_s

    def now_ms(self) -> int:
        return int(self.now_s() * 1000)

    def set_now(self, instant: datetime, *, frozen: bool = False) -> None:
        """Jump to ``instant``; the clock keeps ticking from there unless frozen."""
        target = instant.timestamp()
        with self._lock:
            self._offset_s = target - time.time()
            self._frozen_at = target if frozen else None

    def set_offset(self, offset_s: float) -> None:
        with self._lock:
            self._offset_s = offset_s
            self._frozen_at = None

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset_s += seconds
            if self._frozen_at is not None:
                self._frozen_at += seconds

    def set_real(self) -> None:
        self.set_offset(0.0)

    def state(self) -> ClockState:
        now = self.now_s()
        with self._lock:
            offset, frozen = self._offset_s, self._frozen_at is not None
        return ClockState(
            now=datetime.fromtimestamp(now, UTC).isoformat(),
            now_ms=int(now * 1000),
            offset_s=offset,
            frozen=frozen,
        )
