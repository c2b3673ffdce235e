"""The sandbox clock and AFAS's way with time: Amsterdam local time dressed up with a ``Z``.

AFAS stores modification dates as Europe/Amsterdam local wall-clock time with
sub-second precision and prints them as ``YYYY-MM-DDTHH:MM:SSZ``; the ``Z`` is
misleading. The sandbox does the same: entities keep naive local datetimes
(millisecond precision), and the GetConnector prints them rounded half-up to
the second, so a value shown as ``…:02`` may really be ``…:01.6`` (as observed
on real Profit environments).
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

__all__ = [
    "AMSTERDAM",
    "ClockView",
    "LocalTimes",
    "SandboxClock",
    "format_afas",
    "local_from_epoch",
    "parse_local",
]

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

_LOCAL_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?(Z|z)?$")


class ClockView(msgspec.Struct, kw_only=True):
    """What the control API shows of the clock."""

    mode: Literal["real", "offset", "frozen"]
    now: str
    local: str
    offset_s: float


class SandboxClock:
    """Real time, real time plus an offset, or a frozen instant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = None

    def time(self) -> float:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    def set_real(self) -> None:
        with self._lock:
            self._offset, self._frozen = 0.0, None

    def set_offset(self, offset_s: float) -> None:
        with self._lock:
            self._offset, self._frozen = offset_s, None

    def set_now(self, instant: datetime, *, frozen: bool = True) -> None:
        """Jump to ``instant`` (aware); frozen there, or running on from it."""
        target = instant.timestamp()
        with self._lock:
            if frozen:
                self._frozen = target
            else:
                self._offset, self._frozen = target - time.time(), None

    def now_local(self) -> datetime:
        """The current Amsterdam wall-clock time, naive, millisecond precision."""
        return local_from_epoch(self.time())

    def view(self) -> ClockView:
        with self._lock:
            frozen, offset = self._frozen, self._offset
        mode: Literal["real", "offset", "frozen"] = "frozen" if frozen is not None else "offset" if offset else "real"
        epoch = self.time()
        return ClockView(
            mode=mode,
            now=datetime.fromtimestamp(epoch, UTC).isoformat(),
            local=local_from_epoch(epoch).isoformat(timespec="milliseconds"),
            offset_s=offset,
        )


def local_from_epoch(epoch: float) -> datetime:
    aware = datetime.fromtimestamp(round(epoch, 3), AMSTERDAM)
    return aware.replace(tzinfo=None, microsecond=aware.microsecond // 1000 * 1000)


class LocalTimes:
    """Fast epoch milliseconds → Amsterdam local time, for bulk use (DST changes on whole hours)."""

    def __init__(self) -> None:
        self._hours: dict[int, datetime] = {}

    def __call__(self, epoch_ms: int) -> datetime:
        hour, rest = divmod(epoch_ms, 3_600_000)
        start = self._hours.get(hour)
        if start is None:
            start = datetime.fromtimestamp(hour * 3600, AMSTERDAM).replace(tzinfo=None)
            self._hours[hour] = start
        return start + timedelta(0, 0, 0, rest)


def format_afas(value: datetime | date) -> str:
    """A stored local datetime as AFAS prints it: rounded to the second, with a ``Z``."""
    if not isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT00:00:00Z")
    if value.microsecond >= 500_000:
        value += timedelta(seconds=1)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_local(text: str) -> datetime | None:
    """A filter or field value as local time: date-only or date-time, a trailing Z ignored."""
    match = _LOCAL_RE.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, _ = match.groups()
    micro = int((fraction or "0").ljust(6, "0")[:6])
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
        )
    except ValueError:
        return None
