"""Spotler opt-ins in doubt (``connector.state.doubt``): marked before the upsert, settled after it.

An upsert that reached Spotler and whose worker died before the commit, then a
recipient who unsubscribed again: Spotler shows the agreed value, and only the
mark tells the redelivered opt-in that it would undo an unsubscribe. The
contact is read directly (``GET contact/<externalId>``), not from the change
feed, since the Spotler producer may have read (and moved past) the
unsubscribe already. Only batches that are checked before writing (opt-ins of
existing contacts, late ones) mark and look.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import msgspec

from connector.errors import ConnectorError
from connector.schemas.events import ContactChange, Value
from connector.state import doubt
from connector.state.agreed import AgreedStore
from connector.state.doubt import WritesInDoubt
from connector.state.ordering import CommitItem, ContactWrite

__all__ = ["Current", "mark", "may_have_landed", "opt_ins", "undone_opt_ins"]

# One contact as Spotler holds it now: (mapped values, lastChanged epoch ms), None when unknown there.
Current = Callable[[str], tuple[Mapping[str, Value], int] | None]
Recent = Callable[[Sequence[str]], Mapping[str, tuple[Mapping[str, Value], int]]]
Sending = tuple[ContactChange, ContactWrite, CommitItem]


def opt_ins(write: ContactWrite) -> list[str]:
    return [f.name for f in write.fields if f.name.startswith("permissions.") and f.value is True]


def undone_opt_ins(
    sending: Sequence[Sending], current: Current, doubts: WritesInDoubt, agreed: AgreedStore,
) -> dict[str, dict[str, Value]]:
    """Per contact, the opt-ins a recipient undid after our unconfirmed upsert of them landed, with Spotler's value."""
    wanted = [(change, write) for change, write, _ in sending if opt_ins(write)]
    if not wanted:
        return {}
    ids = [change.contact_id for change, _ in wanted]
    found: dict[str, dict[str, Value]] = {}
    for (change, write), marks, state in zip(wanted, doubts.marks_many(ids), agreed.states(ids), strict=True):
        if not marks or state is None:
            continue
        now = current(change.contact_id)
        if now is None:
            continue
        values, last_changed = now
        gone = {n: values.get(n) for n in opt_ins(write)
                if doubt.undone(marks.get(n), True, state.stamp(n), values.get(n), last_changed)}
        if gone:
            found[change.contact_id] = gone
    return found


def mark(sending: Sequence[Sending], doubts: WritesInDoubt, agreed: AgreedStore) -> dict[str, list[str]]:
    """Mark the batch's opt-ins as sent; returns what was marked, per contact."""
    marked = {write.contact_id: names for _, write, _ in sending if (names := opt_ins(write))}
    if not marked:
        return {}
    states = agreed.states(list(marked))
    doubts.mark_many({cid: (dict.fromkeys(names, True), {n: state.stamp(n) if state is not None else 0 for n in names})
                      for (cid, names), state in zip(marked.items(), states, strict=True)},
                     int(time.time() * 1000))
    return marked


def may_have_landed(exc: Exception, marked: Mapping[str, list[str]], recent: Recent | None) -> set[str]:
    """Contacts of a failed upsert whose opt-ins may be in Spotler: no answer, and the feed cannot show otherwise."""
    if isinstance(exc, ConnectorError) and exc.status is not None and exc.status not in (502, 504):
        return set()  # Spotler answered: nothing was written
    if recent is None:
        return set(marked)
    try:
        seen = recent(list(marked))
    except Exception:
        return set(marked)
    return {cid for cid, names in marked.items()
            if cid in seen and any(seen[cid][0].get(n) is True for n in names)}


def without(write: ContactWrite, item: CommitItem, names: Mapping[str, Value]) -> tuple[ContactWrite, CommitItem]:
    """``write`` less ``names``, which join the item's dropped fields."""
    left = msgspec.structs.replace(write, fields=[f for f in write.fields if f.name not in names])
    return left, CommitItem(write=left, dropped=[*item.dropped, *(f for f in write.fields if f.name in names)])
