"""Write-back targets against ``metainfo/update/{KnContact|KnPerson|KnOrganisation}``."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from connector.clients.afas import AfasClient
from connector.doctor.calls import attempt
from connector.doctor.report import Check, fail, ok, skip, warn
from connector.errors import ConnectorError
from connector.schemas.afas import UpdateConnectorMeta, UpdateField
from connector.schemas.mapping import FORBIDDEN_WRITEBACK, FieldMap, Mapping, WriteTarget

__all__ = ["BOUNCE", "TARGETS", "UpdateMetas", "check_bounce", "check_targets", "read_update_metas"]

TARGETS = "write-back targets"
BOUNCE = "bounce write-back"

_CODES_FROM = "field codes from GET /metainfo/update/{connector}"


class UpdateMetas:
    """The UpdateConnectors' field lists that could be read, and why the others could not."""

    def __init__(self) -> None:
        self.found: dict[str, UpdateConnectorMeta] = {}
        self.missing: dict[str, str] = {}

    def field(self, target: WriteTarget) -> UpdateField | None:
        meta = self.found.get(target.connector)
        return None if meta is None else meta.field(target.field)


def read_update_metas(client: AfasClient, connectors: Iterable[str], granted: set[str]) -> UpdateMetas:
    """``metainfo/update/{c}`` for each granted connector; the rest are noted as not granted."""
    metas = UpdateMetas()
    for connector in dict.fromkeys(connectors):
        if connector not in granted:
            metas.missing[connector] = f"{connector} is not granted"
            continue
        try:
            metas.found[connector] = attempt(partial(client.update_meta, connector))
        except ConnectorError as exc:
            metas.missing[connector] = f"GET metainfo/update/{connector} failed: {exc}"
    return metas


def _target_problem(f: FieldMap, target: WriteTarget, found: UpdateField) -> tuple[str, str] | None:
    """(problem, fix) when ``found`` cannot take this field's values, else None."""
    where = f"column {f.column!r}"
    if found.values:
        return (
            f"{target} is a table-link field (a code table)",
            f"remove `writeback` for {where} in the mapping: table links are never written back to AFAS",
        )
    if str(target) in FORBIDDEN_WRITEBACK:
        return (
            f"{target} is the {FORBIDDEN_WRITEBACK[str(target)]}",
            f"remove `writeback` for {where}: the company name and the address are never written back",
        )
    if f.type == "yesno" and found.dataType != "boolean":
        return (
            f"{target} is {found.dataType}, not a yes/no (boolean) field",
            f"point `writeback` for {where} at a yes/no free field of {target.connector}",
        )
    if f.type == "text" and found.dataType == "boolean":
        return (
            f"{target} is a yes/no field but column {f.column} is text",
            f"point `writeback` for {where} at a text field, or set `type = \"yesno\"`",
        )
    return None


def check_targets(mapping: Mapping, metas: UpdateMetas) -> Check:
    """Every write-back target exists, is not a table link, the company name or the address, and fits."""
    problems: list[str] = []
    fixes: list[str] = []
    notes: list[str] = []
    unchecked: dict[str, list[str]] = {}  # why -> targets
    checked = 0
    for f in mapping.fields:
        target = f.target
        if target is None:
            continue
        if target.connector in metas.missing:
            unchecked.setdefault(metas.missing[target.connector], []).append(str(target))
            continue
        checked += 1
        found = metas.field(target)
        if found is None:
            problems.append(f"{target.connector} has no field {target.field} (column {f.column})")
            fixes.append(
                f"add the field to {target.connector} in AFAS or correct `writeback` for column {f.column!r} "
                f"({_CODES_FROM.format(connector=target.connector)})"
            )
            continue
        problem = _target_problem(f, target, found)
        if problem:
            problems.append(problem[0])
            fixes.append(problem[1])
        elif f.type == "text" and found.dataType not in ("string", "boolean"):
            notes.append(f"{target} is {found.dataType}: AFAS refuses text that does not fit")
    aside = notes + [f"not checked ({why}): {', '.join(targets)}" for why, targets in unchecked.items()]
    if problems:
        return fail(TARGETS, "; ".join(problems + aside), "; ".join(fixes))
    if not checked:
        return skip(TARGETS, "; ".join(aside)) if unchecked else ok(TARGETS, "no field is written back")
    detail = "; ".join([f"{checked} targets exist and fit", *aside])
    if notes:
        return warn(TARGETS, detail, "check that the values Spotler sends fit these AFAS fields")
    return ok(TARGETS, detail)


def check_bounce(mapping: Mapping, metas: UpdateMetas) -> Check:
    """A hard bounce goes to a yes/no KnContact field, blocks the contact, or is only recorded."""
    rule = mapping.bounce
    if rule.writeback is None:
        what = "blocks the contact (KnContact.Bl)" if rule.block_contact else "is recorded only"
        return ok(BOUNCE, f"no [bounce] write-back field: a hard bounce {what}")
    connector, _, code = rule.writeback.partition(".")
    target = WriteTarget(connector, code)
    if connector in metas.missing:
        return skip(BOUNCE, metas.missing[connector])
    found = metas.field(target)
    fix = (
        "set the mapping's [bounce] writeback to a yes/no free field of KnContact "
        f"({_CODES_FROM.format(connector='KnContact')})"
    )
    if found is None:
        return fail(BOUNCE, f"KnContact has no field {code}", fix)
    if found.values or found.dataType != "boolean":
        kind = "a table-link field" if found.values else f"{found.dataType}"
        return fail(BOUNCE, f"{target} is {kind}, not a yes/no (boolean) field", fix)
    return ok(BOUNCE, f"hard bounces set {target} ({found.label or 'yes/no'})")
