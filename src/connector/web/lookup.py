"""The status page's lookup of one contact: the id checked, both sides read live at once, the ``Trace``.

A lookup reads AFAS and Spotler as ``connector trace`` does, but side by side
and within a deadline (``HTTP_TIMEOUT_S`` plus ``READ_SLACK_S`` for the shared
rate limits): a side that has not answered by then, or that fails, is shown as
not read, and the rest of the trace is still shown. The client's own timeout
ends the abandoned read soon after.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import redis

from connector.redaction import redact
from connector.settings import Settings
from connector.state.queues import QUEUES
from connector.status.trace import Side, Trace, build_trace, live_sides

__all__ = ["MAX_CONTACT_ID", "READ_SLACK_S", "BadContactId", "check_contact_id", "lookup"]

MAX_CONTACT_ID = 64  # characters; an AFAS ContactId is far shorter
READ_SLACK_S = 5.0  # on top of HTTP_TIMEOUT_S: a rate-limit slot may take a moment

Reader = Callable[[str], Side]


class BadContactId(ValueError):
    """The lookup's input is not a contact id; the message says why and never repeats the input."""


def check_contact_id(raw: str | None) -> str:
    """The id without surrounding blanks; ``BadContactId`` when empty, too long, not printable or personal."""
    text = (raw or "").strip()
    if not text:
        raise BadContactId("Give a contact id (the AFAS ContactId) to look up.")
    if len(text) > MAX_CONTACT_ID:
        raise BadContactId(f"A contact id is at most {MAX_CONTACT_ID} characters.")
    if not text.isprintable():
        raise BadContactId("A contact id holds printable characters only.")
    if redact(text) != text:  # the page would show it: never an address or a phone number
        raise BadContactId("A contact id is an AFAS ContactId, not an e-mail address or a phone number.")
    return text


def lookup(settings: Settings, client: redis.Redis, contact_id: str, *,
           sides: tuple[Reader, Reader] | None = None, deadline_s: float | None = None) -> Trace:
    """The trace of ``contact_id``; ``sides`` default to the live readers of ``settings``."""
    afas, spotler = sides if sides is not None else live_sides(settings, client)
    deadline_s = settings.http_timeout_s + READ_SLACK_S if deadline_s is None else deadline_s
    afas_side, spotler_side = _read_both(afas, spotler, contact_id, deadline_s)
    return build_trace(client, contact_id, afas=lambda _: afas_side, spotler=lambda _: spotler_side,
                       queues=QUEUES)


def _read_both(afas: Reader, spotler: Reader, contact_id: str, deadline_s: float) -> tuple[Side, Side]:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lookup")
    try:
        futures = (pool.submit(afas, contact_id), pool.submit(spotler, contact_id))
        wait(futures, timeout=deadline_s)
        return _side(futures[0], deadline_s), _side(futures[1], deadline_s)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a late read ends on its client's timeout


def _side(future: Future[Side], deadline_s: float) -> Side:
    if not future.done():
        return Side(problem=f"not read: no answer within {deadline_s:g}s")
    exc = future.exception()
    if exc is not None:  # the readers turn connector errors into a problem; its text is unknown: the class only
        return Side(problem=f"not read: {type(exc).__name__}")
    return future.result()
