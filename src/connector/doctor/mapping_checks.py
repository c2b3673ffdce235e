"""The mapping against the GetConnector's columns (``metainfo/get/{id}``): keys, types, yes/no."""

from __future__ import annotations

from connector.doctor.afas_checks import GETCONNECTOR_MENU
from connector.doctor.report import Check, fail, ok
from connector.schemas.afas import GetConnectorMeta
from connector.schemas.mapping import FieldMap, Mapping

__all__ = [
    "COLUMNS",
    "KEYS",
    "NEWSLETTER",
    "check_columns",
    "check_keys",
    "check_newsletter",
    "key_columns",
]

KEYS = "GetConnector keys"
COLUMNS = "GetConnector columns"
NEWSLETTER = "newsletter fields yes/no"

# The GetConnector data types a mapped field may come from (None: any).
_COMPATIBLE: dict[str, frozenset[str] | None] = {
    "yesno": frozenset({"boolean"}),
    "text": frozenset({"string", "int"}),
    "tablelink": None,
}


def key_columns(mapping: Mapping) -> list[tuple[str, str]]:
    """(column, the mapping's [keys] entry naming it) for every key column."""
    keys = mapping.keys
    wanted = [
        (keys.contact_id, "contact_id"),
        (keys.person_id, "person_id"),
        (keys.organisation_id, "organisation_id"),
        (keys.email, "email"),
    ]
    if keys.blocked:
        wanted.append((keys.blocked, "blocked"))
    return wanted + [(column, "modified") for column in keys.modified]


def _add(column: str, connector_id: str) -> str:
    return f"add column {column} to GetConnector {connector_id} {GETCONNECTOR_MENU}"


def check_keys(meta: GetConnectorMeta, mapping: Mapping, connector_id: str) -> Check:
    """ContactId, PersonNo, OrganisationId, e-mail, blocked and the modification dates are there."""
    problems: list[str] = []
    fixes: list[str] = []
    for column, key in key_columns(mapping):
        found = meta.field(column)
        if found is None:
            problems.append(f"column {column} is missing")
            fixes.append(f"{_add(column, connector_id)}, or name the column in the mapping's [keys] {key}")
        elif key == "modified" and found.dataType != "date":
            problems.append(f"{column} is {found.dataType}, not a date")
            fixes.append(f"make {column} a 'modified on' date column in GetConnector {connector_id}")
    if not mapping.keys.modified:
        problems.append("the mapping names no modification-date column")
        fixes.append(
            "list the contact's, person's and organisation's 'modified on' columns in the mapping's [keys] modified"
        )
    if problems:
        return fail(KEYS, "; ".join(problems), "; ".join(fixes))
    names = [column for column, _ in key_columns(mapping)]
    return ok(KEYS, "present: " + ", ".join(names))


def _type_problem(f: FieldMap, data_type: str) -> str | None:
    allowed = _COMPATIBLE[f.type]
    if allowed is None or data_type in allowed:
        return None
    return f"{f.column} is {data_type}; a {f.type} field needs " + " or ".join(sorted(allowed))


def check_columns(meta: GetConnectorMeta, mapping: Mapping, connector_id: str) -> Check:
    """Every mapped column exists with a type that fits its field type (yes/no fields: see NEWSLETTER)."""
    keys = {column for column, _ in key_columns(mapping)}
    problems: list[str] = []
    fixes: list[str] = []
    for f in mapping.fields:
        found = meta.field(f.column)
        if found is None:
            if f.column not in keys:  # a missing key column is reported once, under KEYS
                problems.append(f"column {f.column} (Spotler {f.name}) is missing")
                fixes.append(f"{_add(f.column, connector_id)}, or change `column` {f.column!r} in the mapping")
            continue
        problem = None if f.permission_bit is not None else _type_problem(f, found.dataType)
        if problem:
            problems.append(problem)
            fixes.append(
                f"give column {f.column} a {f.type} field in GetConnector {connector_id}, "
                f"or set `type` for column {f.column!r} in the mapping"
            )
    if problems:
        return fail(COLUMNS, "; ".join(problems), "; ".join(fixes))
    return ok(COLUMNS, f"{len(mapping.fields)} mapped columns present with compatible types")


def check_newsletter(meta: GetConnectorMeta, mapping: Mapping, connector_id: str) -> Check:
    """Permission-bit fields and the blocked flag are yes/no (boolean) columns."""
    flags = [
        (f.column, f"Spotler permission bit {f.permission_bit}")
        for f in mapping.fields
        if f.permission_bit is not None
    ]
    if mapping.keys.blocked:
        flags.append((mapping.keys.blocked, "the blocked flag"))
    problems: list[str] = []
    fixes: list[str] = []
    checked: list[str] = []
    for column, role in flags:
        found = meta.field(column)
        if found is None:
            continue  # reported under KEYS or COLUMNS
        checked.append(column)
        if found.dataType != "boolean":
            problems.append(f"{column} ({role}) is {found.dataType}, not yes/no (boolean)")
            fixes.append(
                f"make {column} a yes/no free field on the contact in AFAS and a boolean column of "
                f"GetConnector {connector_id} (a newsletter permission must be yes/no)"
            )
    if problems:
        return fail(NEWSLETTER, "; ".join(problems), "; ".join(fixes))
    if not checked:
        return ok(NEWSLETTER, "no permission bit mapped")
    return ok(NEWSLETTER, "yes/no: " + ", ".join(checked))
