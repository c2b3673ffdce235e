"""Decide, field by field, what each side must take: diff, merge and conflict rules.

Inputs are the values both sides last agreed on and each side's current
values (in Spotler-side names). A field changed on one side only goes to the
other side; changed on both sides to different values it is a conflict, settled
by the field's owner rule (``afas``, ``spotler``, ``newest``), except that an
opt-out (a permission bit turned off) always wins over a stale opt-in, and a
blocked AFAS contact keeps every permission bit off. Fields that may not go
back to AFAS (no write-back target) never produce an AFAS write; a Spotler edit
of such a field is undone in Spotler, since AFAS owns it. A field emptied in
Spotler (an anonymization) never erases data in AFAS.

Spotler's feed shows a contact as it is now, not its history: an unsubscribe
that was undone and made again (off → on → off) between two reads looks like no
change. So when an AFAS opt-in meets a Spotler contact that was changed after
it by someone else than the link (``spotler_touched``) and holds the bit off,
the opt-out wins: that change may have been an unsubscribe (taken back and
made again, or made alongside an edit of another field), the link cannot tell,
and an unsubscribe must never be undone. The cost is an AFAS opt-in that a
recipient's unrelated Spotler edit overtook: it is undone in AFAS and
recorded as a conflict.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingT

import msgspec

from connector.schemas.events import Value
from connector.schemas.mapping import FieldMap, Mapping
from connector.sync.diff import diff
from connector.sync.rows import ContactRecord

__all__ = ["Conflict", "Decision", "decide", "decide_row"]


class Conflict(msgspec.Struct, frozen=True, kw_only=True):
    """A field changed on both sides since they last agreed, and how it was settled."""

    contact_id: str
    field: str
    afas_value: Value
    spotler_value: Value
    agreed_value: Value
    rule: str
    winner: str
    value: Value


class Decision(msgspec.Struct, kw_only=True):
    to_spotler: dict[str, Value] = msgspec.field(default_factory=dict)
    to_afas: dict[str, Value] = msgspec.field(default_factory=dict)
    agreed: dict[str, Value] = msgspec.field(default_factory=dict)
    conflicts: list[Conflict] = msgspec.field(default_factory=list)
    ignored: list[str] = msgspec.field(default_factory=list)  # Spotler edits that may not go back


def _writable(field: FieldMap) -> bool:
    return field.target is not None and field.type != "tablelink"


def _settle(
    field: FieldMap, afas: Value, spotler: Value, afas_time: float, spotler_time: float
) -> tuple[str, str]:
    """(rule, winner side) for a true conflict."""
    if field.permission_bit is not None and (afas is False or spotler is False):
        return "opt-out wins", "afas" if afas is False else "spotler"
    if not _writable(field):
        return "one-way field", "afas"
    if field.owner == "newest":
        return "newest", "spotler" if spotler_time > afas_time else "afas"
    return f"owner {field.owner}", field.owner


def decide(
    contact_id: str,
    mapping: Mapping,
    *,
    agreed: MappingT[str, Value] | None,
    afas: MappingT[str, Value],
    spotler: MappingT[str, Value] | None,
    blocked: bool = False,
    afas_time: float = 0.0,
    spotler_time: float = 0.0,
    spotler_touched: float = 0.0,
) -> Decision:
    """What to write where. ``spotler=None`` means Spotler has not changed since ``agreed``.

    Times are epoch seconds: the AFAS row's change, Spotler's ``lastChanged``, and the
    latest Spotler change that was not our own write (0: none).
    """
    decision = Decision()
    base: MappingT[str, Value] = agreed or {}
    for field in mapping.fields:
        name = field.name
        known = agreed is not None and name in base
        a = base.get(name)
        x = afas.get(name)
        s = spotler.get(name, a) if spotler is not None else a
        if blocked and field.permission_bit is not None:
            x = False  # unmailable while blocked, whatever either side says
        if not known and spotler is None:
            # Never synced: AFAS is the source; Spotler learns every non-empty value and every bit.
            if x is not None or field.permission_bit is not None:
                decision.to_spotler[name] = x
            decision.agreed[name] = x
            continue
        if (field.permission_bit is not None and known and a is False and x is True and s is False
                and spotler_touched > afas_time):
            decision.conflicts.append(Conflict(
                contact_id=contact_id, field=name, afas_value=x, spotler_value=s, agreed_value=a,
                rule="opt-out wins", winner="spotler", value=False,
            ))
            if _writable(field):
                decision.to_afas[name] = False
            decision.agreed[name] = False
            continue
        if x == s:
            decision.agreed[name] = x
            continue
        afas_changed = x != a
        spotler_changed = s != a
        if blocked and field.permission_bit is not None:
            decision.to_spotler[name] = False
            decision.agreed[name] = False
            continue
        if afas_changed and not spotler_changed:
            decision.to_spotler[name] = x
            decision.agreed[name] = x
            continue
        if spotler_changed and not afas_changed:
            if s is None and field.permission_bit is None:
                # An emptied field in Spotler (an anonymization, a cleared form field) never
                # erases CRM data in AFAS, and is not filled in again in Spotler either.
                decision.ignored.append(name)
                decision.agreed[name] = a
                continue
            if _writable(field):
                decision.to_afas[name] = s
                decision.agreed[name] = s
            else:
                # AFAS owns one-way fields: its value is put back in Spotler, nothing goes to AFAS.
                decision.ignored.append(name)
                decision.to_spotler[name] = x
                decision.agreed[name] = x
            continue
        rule, winner = _settle(field, x, s, afas_time, spotler_time)
        value = x if winner == "afas" else s
        decision.conflicts.append(
            Conflict(contact_id=contact_id, field=name, afas_value=x, spotler_value=s, agreed_value=a,
                     rule=rule, winner=winner, value=value)
        )
        if value != s:
            decision.to_spotler[name] = value
        if value != x and _writable(field):
            decision.to_afas[name] = value
        decision.agreed[name] = value
    return decision


def decide_row(
    record: ContactRecord,
    mapping: Mapping,
    agreed: MappingT[str, Value] | None,
    spotler: MappingT[str, Value] | None,
    spotler_stamp: int = 0,
    spotler_touched: int = 0,
    afas_stamp: int | None = None,
) -> Decision:
    """``decide`` for one AFAS row and what Spotler holds now (None: not known to differ).

    Spotler's values count only where they moved from the agreed state. A
    contact the link never agreed on but that Spotler already holds (an account
    that existed before the link, or an agreed state that was lost) is settled
    field by field as a conflict, so an opt-out in Spotler is kept.
    ``afas_stamp``: when AFAS's edits in the row were made, where that is known
    to be earlier than the row's stamp (default: the row's stamp).
    """
    afas_ms = record.stamp if afas_stamp is None else afas_stamp
    moved = spotler is not None and (agreed is None or bool(diff(spotler, agreed)) or spotler_touched > afas_ms)
    return decide(
        record.contact_id, mapping, agreed=agreed, afas=record.values,
        spotler=spotler if moved else None, blocked=record.blocked,
        afas_time=afas_ms / 1000, spotler_time=spotler_stamp / 1000, spotler_touched=spotler_touched / 1000,
    )
