"""The keyset and lookup helpers, and the names the split-out AFAS modules export."""

from __future__ import annotations

import importlib

import pytest
from clients_stub import Stub, json_reply
from test_clients_public_names import defined_public_names

from connector.clients.afas import MAX_QUERY_LENGTH, AfasClient
from connector.clients.afas_filter import Condition, Filter, Op
from connector.clients.afas_paging import as_contact_id, fill_batches, keyset_filter, last_key
from connector.errors import FatalError

BASE = "https://12345.rest.afas.online/ProfitRestServices"


@pytest.mark.parametrize("name", ["connector.clients.afas_errors", "connector.clients.afas_paging"])
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(defined_public_names(module))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7", 7), ("123456789", 123456789), ("0", 0), ("²", None), ("٣", None), ("007", None),
     (" 7", None), ("7\n", None), ("-7", None), ("+7", None), ("1_000", None), ("", None)],
)
def test_only_an_id_written_as_afas_writes_a_contact_id_is_one(text: str, expected: int | None) -> None:
    assert as_contact_id(text) == expected


def test_the_last_key_is_used_as_it_came() -> None:
    assert last_key([{"K": 1}, {"K": 2}], "K", "C") == 2
    assert isinstance(last_key([{"K": 2}], "K", "C"), int)
    assert last_key([{"K": "b10"}], "K", "C") == "b10"
    for rows in ([{"K": None}], [{"K": ""}], [{"Other": 1}]):
        with pytest.raises(FatalError, match=r"GetConnector C: .* key column K"):
            last_key(rows, "K", "C")


def test_keyset_filter() -> None:
    flt = Filter.all_of(Condition("Blocked", Op.EQ, False))
    assert keyset_filter(None, "K", None) is None
    assert keyset_filter(flt, "K", None) is flt
    assert keyset_filter(None, "K", 5) == Filter.all_of(Condition("K", Op.GT, 5))
    assert keyset_filter(flt, "K", 5) == Filter.all_of(Condition("Blocked", Op.EQ, False), Condition("K", Op.GT, 5))


def test_fill_batches_fills_each_batch_as_far_as_it_fits() -> None:
    assert list(fill_batches([1, 2, 3, 4, 5], lambda b: sum(b) <= 6)) == [[1, 2, 3], [4], [5]]
    assert list(fill_batches([9, 1], lambda b: False)) == [[9], [1]]  # one item always goes
    assert list(fill_batches([], lambda b: True)) == []


def test_rows_by_ids_asks_in_calls_filled_to_the_limit() -> None:
    stub = Stub(json_reply(200, {"skip": 0, "take": 0, "rows": []}))
    with AfasClient(BASE, "x" * 64, transport=stub.transport) as afas:
        assert afas.rows_by_ids("C", key="ContactId", ids=[str(n) for n in range(10**8, 10**8 + 100)]) == {}
    lengths = [len(r.url.query) + 1 for r in stub.requests]
    assert len(lengths) == 2
    assert MAX_QUERY_LENGTH - 40 < lengths[0] <= MAX_QUERY_LENGTH  # one more id would not fit
    first = stub.requests[0].url.params
    batch = first["filtervalues"].split(";")
    assert first["filterfieldids"] == ";".join(["ContactId"] * len(batch))
    assert set(first["operatortypes"].split(";")) == {"1"}
    assert (first["skip"], first["take"], first["orderbyfieldids"]) == ("0", str(len(batch) + 1), "ContactId")


def test_more_rows_than_ids_means_the_key_is_not_unique() -> None:
    page = {"skip": 0, "take": 3, "rows": [{"ContactId": 1}, {"ContactId": 1}, {"ContactId": 2}]}
    with (
        AfasClient(BASE, "x" * 64, transport=Stub(json_reply(200, page)).transport) as afas,
        pytest.raises(FatalError, match="key column ContactId"),
    ):
        afas.rows_by_ids("C", key="ContactId", ids=["1", "2"])
