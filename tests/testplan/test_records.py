"""The test plan's AFAS records: mapping-driven fields and the nested insert against the AFAS sandbox."""

from __future__ import annotations

import msgspec

from connector.clients.afas_filter import Condition, Filter, Op
from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.testing import running_sandbox
from connector.schemas.mapping import decode_mapping, default_mapping_path, load_mapping
from connector.sync.rows import ContactRecord, decode_row
from connector.testplan.records import PlanAfasClient, PlanFields, TestRecord, organisation_body

MAPPING = load_mapping(None)


def test_the_fields_come_from_the_mapping() -> None:
    fields = PlanFields.of(MAPPING)
    assert str(fields.email) == "KnContact.EmAd"
    assert fields.last_name is not None
    assert fields.last_name.name == "lastName"
    assert fields.permission is not None
    assert fields.permission.permission_bit == 1
    assert [f.permission_bit for f in fields.permissions] == [1, 2]
    assert fields.city is not None
    assert fields.city.column == "City"


def test_a_mapping_without_a_city_or_last_name_leaves_those_steps_without_a_field() -> None:
    text = default_mapping_path().read_text()
    blocks = text.split("[[fields]]")
    kept = [b for b in blocks[1:] if '"City"' not in b and '"LastName"' not in b]
    mapping = decode_mapping("[[fields]]".join([blocks[0], *kept]))
    fields = PlanFields.of(mapping)
    assert fields.city is None
    assert fields.last_name is None


def test_the_record_hides_its_email_from_its_repr() -> None:
    record = TestRecord.for_run("r1")
    assert "@" not in repr(record)
    assert record.email.endswith("@example.com")


def test_the_nested_insert_creates_a_valid_row_with_every_permission_on() -> None:
    record = TestRecord.for_run("r2")
    body = organisation_body(record, PlanFields.of(MAPPING))
    with running_sandbox(contacts=20) as (server, _), PlanAfasClient(
        f"{server.url}/ProfitRestServices", DEFAULT_TOKEN
    ) as afas:
        result = afas.insert_nested(body)
        org = result.keys_of("KnOrganisation")["BcCo"]
        rows = afas.get_page("Spotler_Contacts", filter=Filter.all_of(Condition("OrganisationId", Op.EQ, org)),
                             order_by=["ContactId"])
    assert len(rows) == 1
    decoded = decode_row(rows[0], MAPPING)
    assert isinstance(decoded, ContactRecord), msgspec.to_builtins(decoded)
    assert decoded.values["organisation"] == record.organisation_name
    assert decoded.values["city"] == record.city
    assert decoded.values["email"] == record.email
    assert decoded.values["lastName"] == record.last_name
    assert decoded.values["permissions.1"] is True
    assert decoded.values["permissions.2"] is True
    assert not decoded.blocked
