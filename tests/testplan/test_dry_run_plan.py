"""The pure part of ``resync --dry-run``: one contact's plan, the tally and the rendering."""

from __future__ import annotations

from typing import Any

import msgspec

from connector.schemas.events import Value
from connector.schemas.mapping import load_mapping
from connector.sync.dry_run import DryRunTally, SpotlerNow, mask_value, plan_contact, render
from connector.sync.rows import ContactRecord, Rejection

MAPPING = load_mapping(None)
EMAIL = "anna.jansen@example.com"
BASE: dict[str, Value] = {
    "email": EMAIL, "firstName": "Anna", "infix": None, "lastName": "Jansen", "organisation": "Bakkerij B.V.",
    "city": "Utrecht", "sector": "01", "customerType": "Klant", "permissions.1": True, "permissions.2": False,
}


def record(blocked: bool = False, **changes: Any) -> ContactRecord:
    values = {**BASE, **{k.replace("__", "."): v for k, v in changes.items()}}
    if blocked:
        values = {k: (False if k.startswith("permissions.") else v) for k, v in values.items()}
    return ContactRecord(contact_id="42", person_id="P1", organisation_id="O1", values=values,
                         blocked=blocked, modified="2024-05-01T10:00:00Z")


def spotler(**changes: Any) -> SpotlerNow:
    return SpotlerNow({**BASE, **{k.replace("__", "."): v for k, v in changes.items()}}, last_changed=1)


def fields(diffs: list[Any]) -> dict[str, tuple[Any, Any, str]]:
    return {d.field: (d.old, d.new, d.why) for d in diffs}


def test_nothing_changed_is_no_plan() -> None:
    assert plan_contact(record(), dict(BASE), spotler(), MAPPING) is None


def test_an_afas_edit_is_an_update_from_spotlers_value_to_afas_value() -> None:
    plan = plan_contact(record(firstName="Annelies"), dict(BASE), spotler(), MAPPING)
    assert plan is not None
    assert plan.action == "update"
    assert fields(plan.to_spotler) == {"firstName": (mask_value("Anna"), mask_value("Annelies"), "changed in AFAS")}
    assert plan.to_afas == []


def test_a_blocked_contact_with_a_bit_on_in_spotler_is_an_unsubscribe() -> None:
    plan = plan_contact(record(blocked=True), dict(BASE), spotler(), MAPPING)
    assert plan is not None
    assert plan.action == "unsubscribe"
    assert fields(plan.to_spotler) == {"permissions.1": (True, False, "blocked in AFAS")}


def test_a_spotler_edit_of_a_writable_field_goes_back_to_afas() -> None:
    plan = plan_contact(record(), dict(BASE), spotler(lastName="de Vries", permissions__1=False), MAPPING)
    assert plan is not None
    assert plan.action == "write-back"
    assert fields(plan.to_afas) == {
        "lastName": (mask_value("Jansen"), mask_value("de Vries"), "changed in Spotler"),
        "permissions.1": (True, False, "changed in Spotler"),
    }
    assert plan.to_spotler == []


def test_a_spotler_edit_of_a_one_way_field_is_overwritten_by_afas() -> None:
    plan = plan_contact(record(), dict(BASE), spotler(city="Zwolle"), MAPPING)
    assert plan is not None
    assert plan.action == "update"
    assert plan.to_afas == []
    old, new, why = fields(plan.to_spotler)["city"]
    assert (old, new) == (mask_value("Zwolle"), mask_value("Utrecht"))  # a city is personal: masked
    assert "one-way" in why


def test_a_field_changed_on_both_sides_is_a_conflict_settled_by_its_owner() -> None:
    # customerType: owner "afas" in the example mapping.
    plan = plan_contact(record(customerType="Prospect"), dict(BASE), spotler(customerType="Lead"), MAPPING)
    assert plan is not None
    old, new, why = fields(plan.to_spotler)["customerType"]
    assert (old, new) == ("Lead", "Prospect")
    assert why == "conflict (owner afas): afas wins"


def test_a_contact_never_synced_and_absent_from_spotler_is_created_with_its_email_masked() -> None:
    plan = plan_contact(record(), None, None, MAPPING)
    assert plan is not None
    assert plan.action == "create"
    diffs = fields(plan.to_spotler)
    assert diffs["email"][1] == mask_value(EMAIL)
    assert EMAIL not in msgspec.json.encode(plan).decode()
    assert diffs["permissions.2"][1] is False  # Spotler must learn bits that are off too


def test_a_contact_never_synced_but_already_in_spotler_settles_each_difference_as_a_conflict() -> None:
    # No agreed state (an account that existed before the link, or a lost Redis): every field that
    # differs is settled by its owner rule, so an unsubscribe made in Spotler is never undone.
    newer_in_afas = msgspec.structs.replace(record(), stamp=1_714_557_600_000)  # 2024-05-01, after Spotler's edit
    plan = plan_contact(newer_in_afas, None, spotler(lastName="Jansen-Smit", permissions__1=False), MAPPING)
    assert plan is not None
    assert plan.action == "update"
    assert fields(plan.to_spotler) == {"lastName": (mask_value("Jansen-Smit"), mask_value("Jansen"),
                                                   "conflict (newest): afas wins")}
    assert fields(plan.to_afas) == {"permissions.1": (True, False, "conflict (opt-out wins): spotler wins")}


def test_a_changed_email_shows_as_two_different_masks() -> None:
    plan = plan_contact(record(email="anna@bakkerij.nl"), dict(BASE), spotler(), MAPPING)
    assert plan is not None
    old, new, _ = fields(plan.to_spotler)["email"]
    assert old != new
    assert str(old).startswith("<e-mail ")
    assert str(new).startswith("<e-mail ")


def test_the_tally_counts_everything_and_keeps_a_bounded_sample() -> None:
    tally = DryRunTally(MAPPING, sample=2)
    tally.planned(plan_contact(record(firstName="X"), dict(BASE), spotler(), MAPPING))
    tally.planned(plan_contact(record(blocked=True), dict(BASE), spotler(), MAPPING))
    tally.planned(plan_contact(record(), None, None, MAPPING))
    tally.planned(plan_contact(record(), dict(BASE), spotler(lastName="Y"), MAPPING))
    tally.planned(None)
    tally.rejected(Rejection(contact_id="7", field="Email", reason="no e-mail address"))
    r = tally.report
    assert (r.read, r.update, r.unsubscribe, r.create, r.write_back, r.unchanged, r.rejected, r.changed) == (
        6, 1, 1, 1, 1, 1, 1, 4)
    assert r.rejected_by_reason == {"no e-mail address": 1}
    assert r.fields_to_afas == {"lastName": 1}
    assert len(r.sample) == 2
    text = render(r)
    assert "unsubscribe" in text
    assert "contact 42: update" in text
    assert "@" not in text
