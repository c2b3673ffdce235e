"""AFAS filters: the compact form, the JSON fallback, and how values are written."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.clients.afas_filter import Condition, Filter, Op, format_value


def test_and_within_a_group_or_between_groups() -> None:
    f = Filter.any_of(
        [Condition("A", Op.EQ, 1), Condition("B", Op.CONTAINS, "x")],
        [Condition("A", Op.EQ, 3)],
    )
    assert f.to_params() == {
        "filterfieldids": "A,B;A",
        "filtervalues": "1,x;3",
        "operatortypes": "1,6;1",
    }


def test_all_of_is_one_group_and_no_conditions_is_no_filter() -> None:
    f = Filter.all_of(Condition("Blocked", Op.EQ, False), Condition("Email", Op.NOT_EMPTY))
    assert f.to_params() == {
        "filterfieldids": "Blocked,Email",
        "filtervalues": "false,",
        "operatortypes": "1,9",
    }
    assert Filter.all_of().to_params() == {}


def test_any_of_accepts_filters_and_rejects_empty_groups() -> None:
    a = Filter.all_of(Condition("A", Op.GE, 1))
    b = Filter.any_of([Condition("B", Op.LE, 2)], [Condition("C", Op.NE, 3)])
    assert Filter.any_of(a, b).groups == a.groups + b.groups
    with pytest.raises(ValueError, match="at least one condition"):
        Filter.any_of([])


def test_a_separator_in_a_value_switches_to_filterjson() -> None:
    f = Filter.any_of(
        [Condition("Name", Op.EQ, "Jansen, J."), Condition("Type", Op.EQ, "PRS")],
        [Condition("Note", Op.CONTAINS, "a;b")],
    )
    params = f.to_params()
    assert set(params) == {"filterjson"}
    assert json.loads(params["filterjson"]) == {
        "Filters": {
            "Filter": [
                {
                    "@FilterId": "Filter 1",
                    "Field": [
                        {"@FieldId": "Name", "@OperatorType": "1", "#text": "Jansen, J."},
                        {"@FieldId": "Type", "@OperatorType": "1", "#text": "PRS"},
                    ],
                },
                {
                    "@FilterId": "Filter 2",
                    "Field": [{"@FieldId": "Note", "@OperatorType": "6", "#text": "a;b"}],
                },
            ]
        }
    }


def test_datetimes_are_written_as_amsterdam_local_time_without_z() -> None:
    winter = datetime(2024, 1, 15, 11, 30, 5, 999_000, tzinfo=UTC)
    summer = datetime(2024, 7, 1, 8, 0, 0, tzinfo=UTC)
    assert format_value(winter) == "2024-01-15T12:30:05"
    assert format_value(summer) == "2024-07-01T10:00:00"
    assert format_value(datetime(2024, 7, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))) == (
        "2024-07-01T10:00:00"
    )
    # A naive datetime is already AFAS (Amsterdam) local time.
    assert format_value(datetime(2024, 3, 31, 2, 30)) == "2024-03-31T02:30:00"


def test_other_values() -> None:
    assert format_value(True) == "true"
    assert format_value(False) == "false"
    assert format_value(date(2024, 1, 31)) == "2024-01-31"
    assert format_value(None) == ""
    assert format_value(42) == "42"
    assert format_value(Op.GE) == "2"


_text = st.text(
    alphabet=st.characters(blacklist_characters=",;", blacklist_categories=("Cs",)), max_size=8
)
_condition = st.builds(Condition, _text.filter(bool), st.sampled_from(list(Op)), _text)


@given(st.lists(st.lists(_condition, min_size=1, max_size=4), min_size=1, max_size=4))
def test_compact_form_splits_back_into_the_same_groups(groups: list[list[Condition]]) -> None:
    params = Filter.any_of(*groups).to_params()
    fields = [g.split(",") for g in params["filterfieldids"].split(";")]
    values = [g.split(",") for g in params["filtervalues"].split(";")]
    ops = [g.split(",") for g in params["operatortypes"].split(";")]
    rebuilt = [
        [Condition(f, Op(int(o)), v) for f, v, o in zip(fg, vg, og, strict=True)]
        for fg, vg, og in zip(fields, values, ops, strict=True)
    ]
    assert rebuilt == groups


def test_with_all_ands_the_conditions_into_every_group() -> None:
    since = Filter.any_of([Condition("A", Op.GE, 1)], [Condition("B", Op.GE, 2), Condition("C", Op.EQ, 3)])
    after = Condition("ContactId", Op.GT, 100)
    assert since.with_all(after).groups == (
        (Condition("A", Op.GE, 1), after),
        (Condition("B", Op.GE, 2), Condition("C", Op.EQ, 3), after),
    )
    assert since.with_all(after).to_params() == {
        "filterfieldids": "A,ContactId;B,C,ContactId",
        "filtervalues": "1,100;2,3,100",
        "operatortypes": "2,4;2,1,4",
    }
    assert Filter.all_of().with_all(after) == Filter.all_of(after)  # no filter: just the conditions
    assert since.with_all() is since


_small = st.integers(min_value=0, max_value=3)
_atom = st.builds(Condition, st.sampled_from("ABC"), st.just(Op.EQ), _small)


def _holds(flt: Filter, row: dict[str, int]) -> bool:
    return not flt.groups or any(all(row[c.field] == c.value for c in g) for g in flt.groups)


@given(
    st.lists(st.lists(_atom, min_size=1, max_size=3), max_size=3),
    st.lists(_atom, min_size=1, max_size=2),
    st.fixed_dictionaries({"A": _small, "B": _small, "C": _small}),
)
def test_with_all_is_the_logical_and(
    groups: list[list[Condition]], extra: list[Condition], row: dict[str, int]
) -> None:
    flt = Filter.any_of(*groups)
    assert _holds(flt.with_all(*extra), row) == (_holds(flt, row) and _holds(Filter.all_of(*extra), row))
