"""GetConnector filters: an OR of groups, each group an AND of conditions.

Rendered in the compact form (``filterfieldids``/``filtervalues``/
``operatortypes``, ``,`` between AND-ed conditions, ``;`` between OR-ed
groups). The separators cannot be escaped, so a field or value holding ``,``
or ``;`` switches the whole filter to ``filterjson``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from enum import Enum, IntEnum
from zoneinfo import ZoneInfo

import msgspec

__all__ = ["AMSTERDAM", "Condition", "Filter", "Op", "format_value"]

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
_SEPARATORS = (",", ";")


class Op(IntEnum):
    """AFAS operator codes."""

    EQ = 1
    GE = 2
    LE = 3
    GT = 4
    LT = 5
    CONTAINS = 6
    NE = 7
    EMPTY = 8
    NOT_EMPTY = 9
    STARTS = 10
    NOT_CONTAINS = 11
    NOT_STARTS = 12
    ENDS = 13
    NOT_ENDS = 14
    QUICK = 15


def format_value(v: object) -> str:
    """Render a filter value the way AFAS compares it (date-times in Amsterdam local time)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        local = v.astimezone(AMSTERDAM) if v.tzinfo is not None else v
        # Whole seconds, rounded down: a ">=" cursor then never skips a row.
        return local.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Enum):
        return format_value(v.value)
    return str(v)


class Condition(msgspec.Struct, frozen=True):
    """One comparison: ``field op value`` (the value is ignored by EMPTY/NOT_EMPTY)."""

    field: str
    op: Op
    value: object = ""

    @property
    def text(self) -> str:
        return format_value(self.value)


def _group(conditions: Sequence[Condition]) -> tuple[Condition, ...]:
    group = tuple(conditions)
    if not group:
        raise ValueError("a filter group needs at least one condition")
    return group


class Filter(msgspec.Struct, frozen=True):
    """An OR of groups; each group is an AND of conditions. No groups = no filter."""

    groups: tuple[tuple[Condition, ...], ...]

    @classmethod
    def all_of(cls, *conds: Condition) -> Filter:
        """Every condition must hold (one group)."""
        return cls((tuple(conds),) if conds else ())

    @classmethod
    def any_of(cls, *groups: Sequence[Condition] | Filter) -> Filter:
        """At least one group must hold; a Filter argument contributes its groups."""
        result: list[tuple[Condition, ...]] = []
        for group in groups:
            if isinstance(group, Filter):
                result.extend(group.groups)
            else:
                result.append(_group(group))
        return cls(tuple(result))

    def with_all(self, *conds: Condition) -> Filter:
        """This filter with ``conds`` also required: AND-ed into every group (over the OR).

        ``(a OR b) AND c`` is sent as ``(a AND c) OR (b AND c)``, the only shape
        AFAS's filters take; with no groups the result is ``all_of(*conds)``.
        """
        if not conds:
            return self
        if not self.groups:
            return Filter.all_of(*conds)
        return Filter(tuple((*group, *conds) for group in self.groups))

    @property
    def needs_json(self) -> bool:
        """True when a field or value holds a separator the compact form cannot carry."""
        return any(
            sep in text
            for group in self.groups
            for cond in group
            for text in (cond.field, cond.text)
            for sep in _SEPARATORS
        )

    def to_params(self) -> dict[str, str]:
        """The query parameters for this filter (empty when there is nothing to filter on)."""
        if not self.groups:
            return {}
        if self.needs_json:
            return {"filterjson": self.to_json()}
        return {
            "filterfieldids": ";".join(",".join(c.field for c in g) for g in self.groups),
            "filtervalues": ";".join(",".join(c.text for c in g) for g in self.groups),
            "operatortypes": ";".join(",".join(str(int(c.op)) for c in g) for g in self.groups),
        }

    def to_json(self) -> str:
        """The ``filterjson`` form: Filters OR-ed, the Fields inside one Filter AND-ed."""
        filters = [
            {
                "@FilterId": f"Filter {index}",
                "Field": [
                    {"@FieldId": c.field, "@OperatorType": str(int(c.op)), "#text": c.text}
                    for c in group
                ],
            }
            for index, group in enumerate(self.groups, start=1)
        ]
        return json.dumps(
            {"Filters": {"Filter": filters}}, separators=(",", ":"), ensure_ascii=False
        )
