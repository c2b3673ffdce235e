"""What a deep skip costs: a GetConnector page waits in proportion to the rows it skips.

AFAS's GetConnector documentation (reference §3.1, OAS get-connector.md): a
deep skip is slow, above about 100,000 rows "generally no longer acceptable";
split the set with filters instead, i.e. order by an immutable unique key and
ask for ``key > last`` at skip 0. Profit reads and throws away every skipped
row before the page it returns, so the model is linear in the requested skip:
by default 3 s per 100,000 rows (~0 at skip 0, 30 ms at 1,000, 3 s at
100,000, 6 s at 200,000). That puts a page past AFAS's own target of "a good
request will be handled within 1000 ms" from skip ~33,000 on, and at three
times it where AFAS calls the skip unacceptable. The figure is a model, not a
measurement of a Profit environment.

The cost is that of the skip itself: it applies whatever the skip, also past
the last row (an empty page), and ``skip=-1`` ("get all") pays nothing here.
It is capped at AFAS's server timeout of 15 minutes.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["DEFAULT_MS_PER_100K", "SkipCost", "SkipCostSetting"]

DEFAULT_MS_PER_100K = 3000.0
_SERVER_TIMEOUT_S = 900.0  # AFAS ends a request after 15 minutes (reference: troubleshooting)


class SkipCost(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The curve: ``ms_per_100k`` milliseconds per 100,000 rows skipped; 0 turns the model off."""

    ms_per_100k: Annotated[float, msgspec.Meta(ge=0)] = DEFAULT_MS_PER_100K
    max_s: Annotated[float, msgspec.Meta(ge=0)] = _SERVER_TIMEOUT_S

    def delay_s(self, skip: int) -> float:
        """Seconds a page at ``skip`` waits before it is answered."""
        if skip <= 0:
            return 0.0
        return min(skip * self.ms_per_100k / 100_000_000, self.max_s)


class SkipCostSetting:
    """The curve in force, and the one the sandbox was started with (a control-API reset restores it)."""

    def __init__(self, initial: SkipCost) -> None:
        self.initial = initial
        self.current = initial

    def reset(self) -> None:
        self.current = self.initial
