"""What a full resync would do, from both sides' current values: the pure part of ``resync --dry-run``.

Each valid AFAS row is put through the same merge rules the link applies
(``sync.merge.decide``) with what Spotler holds *now*, so edits made on either
side since the last sync show up. The presentation:

- **to Spotler** — what the resync writes to Spotler, per field ``Spotler now →
  new value``, with why: changed in AFAS, a new contact, blocked in AFAS, a
  Spotler edit of a one-way field that AFAS's value overwrites, or a conflict
  and the rule that settled it.
- **back to AFAS** — Spotler edits the link would write back (through the
  Spotler producer, not the resync itself), per field ``AFAS now → Spotler's value``.

A contact's action is ``create`` (Spotler does not hold it), ``unsubscribe``
(blocked in AFAS while Spotler still has a mapped permission bit on),
``update`` (another difference for Spotler) or ``write-back`` (only AFAS
changes). Values of personal fields (``connector.redaction``: e-mail, names,
phone, address) are replaced by ``<e-mail xxxx>`` / ``<personal xxxx>`` (a short
digest, so that a changed value still shows as a change) before they enter a plan.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingT
from typing import Literal

import msgspec

from connector.redaction import is_personal, mask_value, redact
from connector.schemas.events import Value
from connector.schemas.mapping import Mapping
from connector.sync.merge import Decision, decide_row
from connector.sync.rows import ContactRecord, Rejection

__all__ = [
    "ContactPlan",
    "DryRunReport",
    "DryRunTally",
    "FieldDiff",
    "SpotlerNow",
    "mask_value",
    "plan_contact",
    "present",
    "render",
]

Action = Literal["create", "update", "unsubscribe", "write-back"]
Direction = Literal["to_spotler", "to_afas"]


class SpotlerNow(msgspec.Struct, frozen=True):
    """A contact as Spotler holds it now, in the mapping's Spotler-side names."""

    values: dict[str, Value]
    last_changed: int = 0  # epoch ms


class FieldDiff(msgspec.Struct, frozen=True, kw_only=True):
    """One field a resync would change: its value now, the new value and why."""

    field: str
    old: Value
    new: Value
    why: str


class ContactPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a resync (and the write-back that follows) would change for one contact."""

    contact_id: str
    action: Action
    to_spotler: list[FieldDiff]
    to_afas: list[FieldDiff]


class DryRunReport(msgspec.Struct, kw_only=True):
    """Counts over the whole GetConnector and a sample of per-contact field diffs."""

    read: int = 0
    rejected: int = 0
    unchanged: int = 0
    changed: int = 0  # contacts with a plan (any direction)
    create: int = 0
    update: int = 0
    unsubscribe: int = 0
    write_back: int = 0  # contacts with at least one field going back to AFAS
    conflicts: int = 0
    fields_to_spotler: dict[str, int] = msgspec.field(default_factory=dict)
    fields_to_afas: dict[str, int] = msgspec.field(default_factory=dict)
    rejected_by_reason: dict[str, int] = msgspec.field(default_factory=dict)
    spotler_contacts: int = 0
    gone_from_afas: int = 0  # synced before, no longer in the GetConnector
    deletions: str = "ignore"
    sample_size: int = 20
    sample: list[ContactPlan] = msgspec.field(default_factory=list)
    duration_s: float = 0.0


def _is_personal(name: str, mapping: Mapping) -> bool:
    """The Spotler property, its GetConnector column or its write-back field names a personal kind."""
    field = mapping.field_for_property(name)
    names = [name] if field is None else [name, field.column, field.writeback or ""]
    return any(is_personal(n) for n in names if n) or (field is not None and field.column == mapping.keys.email)


def _shown(name: str, value: Value, mapping: Mapping) -> Value:
    if _is_personal(name, mapping) or (isinstance(value, str) and redact(value) != value):
        return mask_value(value)  # type: ignore[no-any-return]
    return value


def plan_contact(
    record: ContactRecord,
    agreed: MappingT[str, Value] | None,
    spotler: SpotlerNow | None,
    mapping: Mapping,
) -> ContactPlan | None:
    """The plan for one valid row, or None when neither side would change."""
    decision = decide_row(record, mapping, agreed, spotler.values if spotler is not None else None,
                          spotler.last_changed if spotler is not None else 0)
    return present(record, spotler.values if spotler is not None else None, decision, mapping)


def present(
    record: ContactRecord, spotler_now: MappingT[str, Value] | None, decision: Decision, mapping: Mapping
) -> ContactPlan | None:
    """A decision as a plan: per field Spotler's value now → the new one, and why."""
    values_now = spotler_now if spotler_now is not None else {}
    conflicts = {c.field: f"conflict ({c.rule}): {c.winner} wins" for c in decision.conflicts}
    bits = {f.name for f in mapping.fields if f.permission_bit is not None}
    to_spotler: list[FieldDiff] = []
    for name, new in sorted(decision.to_spotler.items()):
        old = values_now.get(name, False if name in bits else None) if spotler_now is not None else None
        if spotler_now is not None and old == new:
            continue  # re-sent, but Spotler already holds it
        if name in conflicts:
            why = conflicts[name]
        elif spotler_now is None:
            why = "new contact"
        elif name in decision.ignored:
            why = "edited in Spotler; one-way field, AFAS's value goes back"
        elif record.blocked and name in bits:
            why = "blocked in AFAS"
        else:
            why = "changed in AFAS"
        to_spotler.append(FieldDiff(field=name, old=_shown(name, old, mapping), new=_shown(name, new, mapping),
                                    why=why))
    to_afas = [
        FieldDiff(field=name, old=_shown(name, record.values.get(name), mapping), new=_shown(name, new, mapping),
                  why=conflicts.get(name, "changed in Spotler"))
        for name, new in sorted(decision.to_afas.items())
    ]
    if not to_spotler and not to_afas:
        return None
    action: Action
    if spotler_now is None:
        action = "create"
    elif record.blocked and any(d.field in bits and d.old is True and d.new is False for d in to_spotler):
        action = "unsubscribe"
    elif to_spotler:
        action = "update"
    else:
        action = "write-back"
    return ContactPlan(contact_id=record.contact_id, action=action, to_spotler=to_spotler, to_afas=to_afas)


class DryRunTally:
    """Folds plans and rejections into a DryRunReport, keeping the first ``sample`` plans."""

    def __init__(self, mapping: Mapping, sample: int = 20) -> None:
        self.report = DryRunReport(deletions=mapping.deletions, sample_size=sample)

    def rejected(self, rejection: Rejection) -> None:
        r = self.report
        r.read += 1
        r.rejected += 1
        r.rejected_by_reason[rejection.reason] = r.rejected_by_reason.get(rejection.reason, 0) + 1

    def planned(self, plan: ContactPlan | None) -> None:
        r = self.report
        r.read += 1
        if plan is None:
            r.unchanged += 1
            return
        r.changed += 1
        if plan.action == "create":
            r.create += 1
        elif plan.action == "unsubscribe":
            r.unsubscribe += 1
        elif plan.action == "update":
            r.update += 1
        if plan.to_afas:
            r.write_back += 1
        r.conflicts += sum(1 for d in (*plan.to_spotler, *plan.to_afas) if d.why.startswith("conflict"))
        for diffs, counts in ((plan.to_spotler, r.fields_to_spotler), (plan.to_afas, r.fields_to_afas)):
            for d in diffs:
                counts[d.field] = counts.get(d.field, 0) + 1
        if len(r.sample) < r.sample_size:
            r.sample.append(plan)


def _value(value: Value) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return repr(value) if not value.startswith("<e-mail") else value


def render(report: DryRunReport) -> str:
    """The report as text for a terminal."""
    r = report
    lines = [
        f"resync --dry-run: nothing was written ({r.read:,} AFAS rows, {r.spotler_contacts:,} contacts in "
        f"Spotler's recent feed, {r.duration_s:.1f}s)",
        "",
        "to Spotler (what a resync would write):",
        f"  create       {r.create:>8,}",
        f"  update       {r.update:>8,}",
        f"  unsubscribe  {r.unsubscribe:>8,}  (blocked in AFAS, a permission still on in Spotler)",
        f"  unchanged    {r.unchanged:>8,}",
        f"  rejected     {r.rejected:>8,}",
    ]
    lines += [f"    {n:>8,}  {reason}" for reason, n in sorted(r.rejected_by_reason.items(), key=lambda kv: -kv[1])]
    lines += [
        "",
        "back to AFAS (Spotler edits the link would write back):",
        f"  contacts     {r.write_back:>8,}",
        "",
        f"conflicts settled by the owner rules: {r.conflicts:,}",
        f"synced but no longer in the GetConnector: {r.gone_from_afas:,} (deletions = {r.deletions})",
    ]
    for title, counts in (("fields to Spotler", r.fields_to_spotler), ("fields to AFAS", r.fields_to_afas)):
        if counts:
            lines.append(f"{title}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    if r.sample:
        lines += ["", f"sample ({len(r.sample)} of {r.changed:,} "
                      "contacts; Spotler now → new, AFAS now → new):"]
        for plan in r.sample:
            lines.append(f"  contact {plan.contact_id}: {plan.action}")
            for arrow, diffs in (("→ Spotler", plan.to_spotler), ("→ AFAS   ", plan.to_afas)):
                lines += [f"    {arrow} {d.field}: {_value(d.old)} → {_value(d.new)}  ({d.why})" for d in diffs]
    return "\n".join(lines)
