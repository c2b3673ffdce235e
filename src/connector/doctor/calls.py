"""One call to a remote system, tried a second time after a transient failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from connector.errors import RetriableError

__all__ = ["attempt"]

_T = TypeVar("_T")
_MAX_WAIT_S = 5.0


def attempt(call: Callable[[], _T]) -> _T:
    """``call()``; after a retriable error wait (at most 5 s) and try once more.

    A release phase should not fail on one dropped connection or a single 503,
    nor wait minutes for a system that is really down.
    """
    try:
        return call()
    except RetriableError as exc:
        time.sleep(min(_MAX_WAIT_S, exc.retry_after if exc.retry_after is not None else 1.0))
    return call()
