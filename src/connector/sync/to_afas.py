"""Turn a Spotler-side change into the fewest AFAS UpdateConnector writes.

Only the entities whose fields changed are written, one call each: contact
fields through KnContact, person fields through KnPerson, organisation free
fields through KnOrganisation. The write-back rules are enforced here, the only
road to AFAS: a field without a write-back target (table links, company name,
address) is never sent, whatever the event says.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from connector.schemas.events import AfasChange, Value
from connector.schemas.mapping import FORBIDDEN_WRITEBACK, Mapping

__all__ = ["ENTITY_ORDER", "EntityWrite", "afas_writes"]

Connector = Literal["KnContact", "KnPerson", "KnOrganisation"]
ENTITY_ORDER: tuple[Connector, ...] = ("KnContact", "KnPerson", "KnOrganisation")


class EntityWrite(msgspec.Struct, frozen=True, kw_only=True):
    """One PUT to one UpdateConnector: its key fields plus the changed fields."""

    connector: Connector
    fields: dict[str, Any]
    changed: tuple[str, ...]  # the Spotler-side names it carries (for agreed state and logs)


def _afas_value(field_type: str, value: Value) -> Any:
    if field_type == "yesno":
        return bool(value)
    return "" if value is None else str(value)  # AFAS clears a field sent as ""


def afas_writes(change: AfasChange, mapping: Mapping) -> list[EntityWrite]:
    """The writes for ``change``; fields that may not go back are dropped."""
    per_entity: dict[Connector, dict[str, Any]] = {}
    names: dict[Connector, list[str]] = {}
    for name, value in sorted(change.changes.items()):
        field = mapping.field_for_property(name)
        target = field.target if field is not None else None
        if field is None or target is None or field.type == "tablelink" or str(target) in FORBIDDEN_WRITEBACK:
            continue
        connector: Connector = target.connector  # type: ignore[assignment]
        per_entity.setdefault(connector, {})[target.field] = _afas_value(field.type, value)
        names.setdefault(connector, []).append(name)
    if change.bounce == "HARDBOUNCE":
        rule = mapping.bounce
        contact_fields = per_entity.setdefault("KnContact", {})
        if rule.writeback:
            contact_fields[rule.writeback.partition(".")[2]] = True
        if rule.block_contact:
            contact_fields["Bl"] = True
        if not contact_fields:
            del per_entity["KnContact"]
    keys: dict[Connector, dict[str, Any]] = {
        "KnContact": {"BcCoOga": change.organisation_id, "BcCoPer": change.person_id},
        "KnPerson": {"MatchPer": "0", "BcCo": change.person_id},
        "KnOrganisation": {"MatchOga": "0", "BcCo": change.organisation_id},
    }
    return [
        EntityWrite(
            connector=connector,
            fields={**keys[connector], **per_entity[connector]},
            changed=tuple(names.get(connector, ())),
        )
        for connector in ENTITY_ORDER
        if connector in per_entity
    ]
