"""What a producer knows besides what it just read: changes on their way, and our own last writes.

A state (``connector.state.agreed``) tells a producer which changes are
already enqueued (pending), when we last wrote into each system, and the
latest Spotler change that was not our own write. Moments are compared on one
clock where they can be (Redis's); Spotler's ``lastChanged`` against our last
write into Spotler assumes the two clocks agree within ``CLOCK_MARGIN_MS``.
"""

from __future__ import annotations

from collections.abc import Mapping

from connector.schemas.events import Value
from connector.state.agreed import ContactState
from connector.sync.diff import diff

__all__ = ["CLOCK_MARGIN_MS", "SpotlerSeen", "already_pending", "is_echo", "not_our_write", "spotler_view", "touched"]

# Also covers a commit that Redis stamped just before a page was requested but that the
# other system had not answered yet.
CLOCK_MARGIN_MS = 1000
# How long before its commit a write of ours may have been stamped by the target: the call and
# the retries of its rate slot (an AFAS write of three entities takes a few seconds).
ECHO_WINDOW_MS = 60_000


class SpotlerSeen:
    """A contact as Spotler's recent feed shows it (in memory, for one poll)."""

    __slots__ = ("stamp", "values")

    def __init__(self, values: dict[str, Value], stamp: int) -> None:
        self.values = values
        self.stamp = stamp


def not_our_write(state: ContactState | None, last_changed: int) -> bool:
    """A Spotler change at ``last_changed`` came after our last write into Spotler (so it is not that write)."""
    return state is None or last_changed > state.ws + CLOCK_MARGIN_MS


def is_echo(state: ContactState | None, into: str, stamp: int) -> bool:
    """A change stamped ``stamp`` in ``into`` may be our own latest write there (for the journal's "echo")."""
    if state is None:
        return False
    written = state.ws if into == "spotler" else state.wa
    return written > 0 and written - ECHO_WINDOW_MS <= stamp <= written + CLOCK_MARGIN_MS


def touched(state: ContactState | None, last_changed: int | None) -> int:
    """Spotler's latest change that was not our own write (epoch ms), 0 if none is known."""
    known = state.st if state is not None else 0
    if last_changed is not None and not_our_write(state, last_changed):
        known = max(known, last_changed)
    return known


def spotler_view(
    before: dict[str, Value] | None, state: ContactState | None, seen: SpotlerSeen | None, now: float,
    touched_later: bool,
) -> tuple[dict[str, Value] | None, int]:
    """What Spotler holds now, when it may differ from the agreed state, and its stamp.

    ``touched_later``: Spotler changed after the AFAS row (by someone else than us); the
    merge rules then need Spotler's values even where they equal the agreed state.
    """
    if seen is not None and (before is None or diff(seen.values, before) or touched_later):
        return seen.values, seen.stamp
    pending = state.pending("afas", now) if state is not None else {}
    if before is None or not (pending or touched_later):
        return None, 0
    # Spotler edits on their way to AFAS: Spotler already holds them.
    stamp = max((p.stamp for p in pending.values()), default=state.st if state is not None else 0)
    return {**before, **{n: p.value for n, p in pending.items()}}, stamp


def already_pending(
    state: ContactState, into: str, changes: Mapping[str, Value], stamps: Mapping[str, int], now: float
) -> bool:
    """The same change (values and stamps) is enqueued already and not yet applied."""
    pending = state.pending(into, now)
    return all(n in pending and pending[n].value == v and pending[n].stamp == stamps[n] for n, v in changes.items())
