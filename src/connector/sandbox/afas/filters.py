"""GetConnector filters: the compact lists, ``filterjson``, the 15 operators.

Compact form: ``filterfieldids``, ``filtervalues`` and ``operatortypes`` are
split on ``;`` into OR-ed groups and each group on ``,`` into AND-ed
conditions (percent-encoded separators arrive decoded). Text comparisons are
case-insensitive, as on Profit's SQL Server collation. Operators 6 and 10-15
take the value with or without ``%`` wildcards; 15 (quick filter) is treated
as "contains". Empty values never match a comparison (1-6, 10, 13, 15), but
do satisfy the negations (7, 11, 12, 14) — "does not contain x" holds for an
empty field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import msgspec

from connector.sandbox.afas.catalogue import DataType
from connector.sandbox.afas.clock import parse_local
from connector.sandbox.afas.errors import UNEXPECTED, AfasError

__all__ = ["Condition", "Predicate", "comparison_value", "compile_filters", "parse_compact", "parse_json"]

Row = tuple[Any, ...]
Predicate = Callable[[Row], bool]
# column id -> (position in the row, data type)
Columns = Mapping[str, tuple[int, DataType]]

_TEXT_OPS = {6, 10, 11, 12, 13, 14, 15}
_NEGATED = {7, 11, 12, 14}


class Condition(msgspec.Struct, frozen=True):
    field: str
    op: int
    value: str


def parse_compact(fields: str, values: str | None, ops: str | None) -> list[list[Condition]]:
    """The three parallel lists as OR-groups of AND-ed conditions."""
    f_groups = fields.split(";")
    v_groups = values.split(";") if values is not None else [""] * len(f_groups)
    o_groups = ops.split(";") if ops is not None else None
    if len(v_groups) != len(f_groups) or (o_groups is not None and len(o_groups) != len(f_groups)):
        raise AfasError("The number of filter fields, values and operators does not match.", UNEXPECTED)
    groups: list[list[Condition]] = []
    for index, f_group in enumerate(f_groups):
        f_list = f_group.split(",")
        v_list = v_groups[index].split(",") if values is not None else [""] * len(f_list)
        o_list = o_groups[index].split(",") if o_groups is not None else ["1"] * len(f_list)
        if not (len(f_list) == len(v_list) == len(o_list)):
            raise AfasError("The number of filter fields, values and operators does not match.", UNEXPECTED)
        groups.append([Condition(f.strip(), _operator(o), v) for f, v, o in zip(f_list, v_list, o_list, strict=True)])
    return groups


def parse_json(text: str) -> list[list[Condition]]:
    """``{"Filters":{"Filter":[{"@FilterId":…,"Field":[{"@FieldId","@OperatorType","#text"}]}]}}``."""
    try:
        doc = msgspec.json.decode(text)
        filters = doc["Filters"]["Filter"]
        groups: list[list[Condition]] = []
        for flt in filters if isinstance(filters, list) else [filters]:
            fields = flt["Field"]
            groups.append(
                [
                    Condition(
                        str(f["@FieldId"]),
                        _operator(str(f.get("@OperatorType", "1"))),
                        _json_text(f.get("#text")),
                    )
                    for f in (fields if isinstance(fields, list) else [fields])
                ]
            )
        return groups
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
        raise AfasError("The filter (filterjson) is not valid.", UNEXPECTED) from None


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _operator(text: str) -> int:
    try:
        op = int(text.strip())
    except ValueError:
        op = 0
    if not 1 <= op <= 15:
        raise AfasError(f"Operator type '{text.strip()}' is not valid.", UNEXPECTED)
    return op


def compile_filters(groups: list[list[Condition]], columns: Columns) -> Predicate:
    """One predicate over a row: any group whose conditions all hold."""
    compiled = [[_compile(c, columns) for c in group] for group in groups if group]
    if len(compiled) == 1 and len(compiled[0]) == 1:
        return compiled[0][0]
    return lambda row: any(all(p(row) for p in group) for group in compiled)


def _column(field: str, columns: Columns) -> tuple[int, DataType]:
    found = columns.get(field)
    if found is None:
        folded = {k.casefold(): v for k, v in columns.items()}
        found = folded.get(field.casefold())
    if found is None:
        raise AfasError(f"Connector field '{field}' not found", UNEXPECTED)
    return found


def _compile(cond: Condition, columns: Columns) -> Predicate:
    index, data_type = _column(cond.field, columns)
    op = cond.op
    if op == 8:
        return lambda row: row[index] is None or row[index] == ""
    if op == 9:
        return lambda row: not (row[index] is None or row[index] == "")
    negated = op in _NEGATED
    if op in _TEXT_OPS or "%" in cond.value:
        match = _text_matcher(op, cond.value)
        show = _text_of(data_type)
        if negated:
            return lambda row: row[index] is None or not match(show(row[index]))
        return lambda row: row[index] is not None and match(show(row[index]))
    value = comparison_value(cond, data_type)
    key: Callable[[Any], Any] = str.casefold if data_type == "string" else _identity
    compare = _COMPARE[op]
    if negated:
        return lambda row: row[index] is None or compare(key(row[index]), value)
    return lambda row: row[index] is not None and compare(key(row[index]), value)


def comparison_value(cond: Condition, data_type: DataType) -> Any:
    """What a comparison (1-5, 7) compares the column with: typed, text casefolded."""
    value = _typed_value(cond.value, data_type, cond.field)
    return str(value).casefold() if data_type == "string" else value


def _identity(value: Any) -> Any:
    return value


_COMPARE: dict[int, Callable[[Any, Any], bool]] = {
    1: lambda a, b: bool(a == b),
    2: lambda a, b: bool(a >= b),
    3: lambda a, b: bool(a <= b),
    4: lambda a, b: bool(a > b),
    5: lambda a, b: bool(a < b),
    7: lambda a, b: bool(a != b),
}


def _text_of(data_type: DataType) -> Callable[[Any], str]:
    if data_type == "date":
        return lambda v: v.strftime("%Y-%m-%dT%H:%M:%S").casefold()
    if data_type == "boolean":
        return lambda v: "true" if v else "false"
    return lambda v: str(v).casefold()


def _text_matcher(op: int, raw: str) -> Callable[[str], bool]:
    """A LIKE-style test; the wildcards the operator implies may be sent or left out."""
    value = raw.casefold()
    if op in (6, 11, 15):
        value = value.strip("%")
        mode = "contains"
    elif op in (10, 12):
        value = value.rstrip("%")
        mode = "starts"
    elif op in (13, 14):
        value = value.lstrip("%")
        mode = "ends"
    else:
        mode = "like"
    if "%" in value or mode == "like":
        body = ".*".join(re.escape(part) for part in value.split("%"))
        pattern = {
            "contains": f".*{body}.*",
            "starts": f"{body}.*",
            "ends": f".*{body}",
            "like": body,
        }[mode]
        regex = re.compile(pattern, re.DOTALL)
        return lambda text: regex.fullmatch(text) is not None
    if mode == "contains":
        return lambda text: value in text
    if mode == "starts":
        return lambda text: text.startswith(value)
    return lambda text: text.endswith(value)


def _typed_value(raw: str, data_type: DataType, field: str) -> Any:
    text = raw.strip()
    try:
        if data_type == "int":
            return int(text)
        if data_type == "decimal":
            return float(text)
    except ValueError:
        raise AfasError(f"The filter value for field '{field}' is not a valid number.", UNEXPECTED) from None
    if data_type == "boolean":
        lowered = text.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise AfasError(f"The filter value for field '{field}' is not a valid yes/no value.", UNEXPECTED)
    if data_type == "date":
        parsed: datetime | None = parse_local(text)
        if parsed is None:
            raise AfasError(f"The filter value for field '{field}' is not a valid date.", UNEXPECTED)
        return parsed
    return raw
