"""``connector doctor`` against a Spotler sandbox with wrong credentials or a changed catalogue."""

from __future__ import annotations

from typing import Any

from tests.doctor.systems import Systems

from connector.sandbox.spotler.app import DEFAULT_SECRET


def _catalogue(systems: Systems) -> list[dict[str, Any]]:
    response = systems.spotler.get("/properties")
    response.raise_for_status()
    return list(response.json())


def _replace(systems: Systems, catalogue: list[dict[str, Any]]) -> None:
    systems.spotler.put("/properties", json=catalogue).raise_for_status()


def test_a_wrong_secret_is_refused_and_never_shown(systems: Systems) -> None:
    wrong = "wrong-" + DEFAULT_SECRET
    outcome = systems.check(SPOTLER_SECRET=wrong)
    assert outcome.exit_code == 1
    credentials = outcome.checks["Spotler credentials"]
    assert (credentials["status"], credentials["detail"]) == ("fail", "key or secret refused (HTTP 401)")
    assert credentials["fix"].startswith("set SPOTLER_KEY and SPOTLER_SECRET to the REST API consumer key and secret")
    for dependent in ("Spotler properties", "Spotler permissions"):
        assert outcome.checks[dependent]["detail"] == "not checked: the Spotler key and secret were not accepted"
    assert outcome.failures() == {"Spotler credentials"}
    assert wrong not in outcome.output


def test_a_dropped_property_fails_with_where_to_add_it(systems: Systems) -> None:
    _replace(systems, [p for p in _catalogue(systems) if p["name"] != "customerType"])
    outcome = systems.check()
    assert outcome.exit_code == 1
    properties = outcome.checks["Spotler properties"]
    assert properties["status"] == "fail"
    assert properties["detail"] == "property customerType (column CustomerType) does not exist"
    assert properties["fix"] == (
        "add contact field customerType in Spotler Mail+ (contact fields), "
        "or change `property` for column 'CustomerType'"
    )
    assert outcome.failures() == {"Spotler properties"}


def test_an_e_mail_property_that_is_not_of_type_email_fails(systems: Systems) -> None:
    catalogue = [{**p, "type": "string"} if p["name"] == "email" else p for p in _catalogue(systems)]
    _replace(systems, catalogue)
    outcome = systems.check()
    properties = outcome.checks["Spotler properties"]
    assert (properties["status"], properties["detail"]) == ("fail", "email is of type string, not email")
    assert outcome.exit_code == 1


def test_a_validated_property_type_only_warns(systems: Systems) -> None:
    catalogue = [{**p, "type": "postcode"} if p["name"] == "city" else p for p in _catalogue(systems)]
    _replace(systems, catalogue)
    outcome = systems.check()
    properties = outcome.checks["Spotler properties"]
    assert properties["status"] == "warn"
    assert properties["detail"] == "city is of type postcode: Spotler refuses values that do not fit"
    assert outcome.exit_code == 0


def test_a_dropped_permission_bit_fails(systems: Systems) -> None:
    catalogue = _catalogue(systems)
    for prop in catalogue:
        if prop["name"] == "permissions":
            prop["entries"] = [e for e in prop["entries"] if e["bit"] != 2]
    _replace(systems, catalogue)
    outcome = systems.check()
    assert outcome.exit_code == 1
    permissions = outcome.checks["Spotler permissions"]
    assert permissions["status"] == "fail"
    assert permissions["detail"] == "bit 2 (column ProductNews) is not a permission (the account has bits 1)"
    assert permissions["fix"] == (
        "add permission bit 2 in Spotler Mail+ (contact fields), or change `permission_bit` for column 'ProductNews'"
    )
    assert outcome.failures() == {"Spotler permissions"}


def test_no_permissions_property_at_all_fails(systems: Systems) -> None:
    _replace(systems, [p for p in _catalogue(systems) if p["name"] != "permissions"])
    outcome = systems.check()
    permissions = outcome.checks["Spotler permissions"]
    assert (permissions["status"], permissions["detail"]) == ("fail", "the account has no 'permissions' set property")
    assert outcome.exit_code == 1
