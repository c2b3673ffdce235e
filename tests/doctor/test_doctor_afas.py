"""``connector doctor`` against an AFAS sandbox misconfigured in each way the link cares about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.doctor.systems import Systems

from connector.sandbox.afas.app import DEFAULT_TOKEN

MENU = "in AFAS (Algemeen > Connectoren > GetConnectors)"


def _without(definition: dict[str, Any], column: str) -> dict[str, Any]:
    columns = [c for c in definition["columns"] if c["id"] != column]
    assert len(columns) == len(definition["columns"]) - 1
    return {**definition, "columns": columns}


def _changed(definition: dict[str, Any], column: str, **change: str) -> dict[str, Any]:
    columns = [{**c, **change} if c["id"] == column else c for c in definition["columns"]]
    return {**definition, "columns": columns}


def test_a_dropped_key_column_fails_with_where_to_add_it(systems: Systems) -> None:
    systems.put_definition(_without(systems.definition(), "PersonNo"))
    outcome = systems.check()
    assert outcome.exit_code == 1
    keys = outcome.checks["GetConnector keys"]
    assert (keys["status"], keys["detail"]) == ("fail", "column PersonNo is missing")
    assert keys["fix"] == (
        f"add column PersonNo to GetConnector Spotler_Contacts {MENU}, "
        "or name the column in the mapping's [keys] person_id"
    )
    assert outcome.checks["sample rows"]["detail"] == (
        "not checked: the GetConnector or its key columns are not in order"
    )
    assert outcome.failures() == {"GetConnector keys"}


def test_a_renamed_mapped_column_fails(systems: Systems) -> None:
    systems.put_definition(_changed(systems.definition(), "FirstName", id="Voornaam"))
    outcome = systems.check()
    assert outcome.exit_code == 1
    columns = outcome.checks["GetConnector columns"]
    assert (columns["status"], columns["detail"]) == ("fail", "column FirstName (Spotler firstName) is missing")
    assert columns["fix"] == (
        f"add column FirstName to GetConnector Spotler_Contacts {MENU}, or change `column` 'FirstName' in the mapping"
    )
    assert outcome.failures() == {"GetConnector columns"}


def test_a_modification_date_that_is_not_a_date_fails(systems: Systems) -> None:
    systems.put_definition(_changed(systems.definition(), "PersonModified", dataType="string"))
    outcome = systems.check()
    keys = outcome.checks["GetConnector keys"]
    assert (keys["status"], keys["detail"]) == ("fail", "PersonModified is string, not a date")
    assert outcome.exit_code == 1


def test_a_newsletter_column_that_is_text_fails(systems: Systems) -> None:
    systems.put_definition(_changed(systems.definition(), "Newsletter", dataType="string"))
    outcome = systems.check()
    assert outcome.exit_code == 1
    newsletter = outcome.checks["newsletter fields yes/no"]
    assert newsletter["status"] == "fail"
    assert newsletter["detail"] == "Newsletter (Spotler permission bit 1) is string, not yes/no (boolean)"
    assert newsletter["fix"].startswith("make Newsletter a yes/no free field on the contact in AFAS")
    # And the producer would refuse every row: consent is read from real booleans only.
    assert outcome.failures() == {"newsletter fields yes/no", "sample rows"}
    assert "yes/no field is not a boolean (got str)" in outcome.checks["sample rows"]["detail"]


def test_a_text_field_from_a_date_column_fails(systems: Systems) -> None:
    systems.put_definition(_changed(systems.definition(), "CustomerType", dataType="date"))
    outcome = systems.check()
    columns = outcome.checks["GetConnector columns"]
    assert (columns["status"], columns["detail"]) == ("fail", "CustomerType is date; a text field needs int or string")
    assert outcome.exit_code == 1


def test_a_withdrawn_getconnector_fails_and_lists_what_the_token_may_use(systems: Systems) -> None:
    systems.afas.put("/token", json={"getConnectors": ["Profit_Contacts"]}).raise_for_status()
    outcome = systems.check()
    assert outcome.exit_code == 1
    granted = outcome.checks["GetConnector granted"]
    assert granted["status"] == "fail"
    assert granted["detail"] == (
        "GetConnector Spotler_Contacts does not exist or is not granted to the token "
        "(the token may use: Profit_Contacts)"
    )
    assert granted["fix"].startswith(
        "add GetConnector Spotler_Contacts to the App Connector in AFAS (Algemeen > Connectoren > App connectoren)"
    )
    for dependent in ("GetConnector keys", "GetConnector columns", "newsletter fields yes/no"):
        assert outcome.checks[dependent]["detail"] == "not checked: the GetConnector is not granted"
    assert outcome.status("sample rows") == "skip"
    assert outcome.status("write-back targets") == "ok"


def test_a_withdrawn_updateconnector_fails_with_what_to_grant(systems: Systems) -> None:
    systems.afas.put("/token", json={"updateConnectors": ["KnContact", "KnOrganisation"]}).raise_for_status()
    outcome = systems.check()
    assert outcome.exit_code == 1
    granted = outcome.checks["UpdateConnectors granted"]
    assert (granted["status"], granted["detail"]) == ("fail", "not granted to the token: KnPerson")
    assert granted["fix"] == (
        "grant UpdateConnector KnPerson to the App Connector in AFAS (Algemeen > Connectoren > App connectoren)"
    )
    targets = outcome.checks["write-back targets"]
    assert targets["status"] == "ok"
    assert targets["detail"] == (
        "4 targets exist and fit; not checked (KnPerson is not granted): KnPerson.FiNm, KnPerson.Is, KnPerson.LaNm"
    )
    assert outcome.failures() == {"UpdateConnectors granted"}


def test_a_wrong_token_is_refused_and_dependent_checks_are_skipped(systems: Systems) -> None:
    wrong = DEFAULT_TOKEN.replace("5A1B", "0000")
    outcome = systems.check(AFAS_TOKEN=wrong)
    assert outcome.exit_code == 1
    token = outcome.checks["AFAS token"]
    assert (token["status"], token["detail"]) == ("fail", "token refused (HTTP 401)")
    assert token["fix"].startswith("set AFAS_TOKEN to the App Connector's token exactly as AFAS issued it")
    why = "not checked: the AFAS token was not accepted"
    skipped = [name for name, c in outcome.checks.items() if c["detail"] == why]
    assert len(skipped) == 8
    assert outcome.failures() == {"AFAS token"}


def test_afas_in_maintenance_fails_after_one_more_try(systems: Systems) -> None:
    faults = {"maintenance": True, "maintenance_retry_after_s": 0}
    systems.afas.put("/faults", json=faults).raise_for_status()
    outcome = systems.check()
    token = outcome.checks["AFAS token"]
    assert token["status"] == "fail"
    assert token["detail"].startswith("AFAS did not answer: AFAS GET metainfo: HTTP 503")
    assert systems.afas.get("/requests").json()["routes"]["GET /metainfo"] == 2
    assert outcome.exit_code == 1


def test_a_table_link_write_back_target_fails(systems: Systems, tmp_path: Path) -> None:
    path = systems.mapping_file(
        tmp_path,
        'writeback = "KnOrganisation.UCC690F77030D0AD3D3D411F648A10379"',
        'writeback = "KnOrganisation.ViLb"',
    )
    outcome = systems.check(CONNECTOR_MAPPING=path)
    assert outcome.exit_code == 1
    targets = outcome.checks["write-back targets"]
    assert targets["status"] == "fail"
    assert targets["detail"] == "KnOrganisation.ViLb is a table-link field (a code table)"
    assert targets["fix"] == (
        "remove `writeback` for column 'CustomerType' in the mapping: table links are never written back to AFAS"
    )
    assert outcome.failures() == {"write-back targets"}


def test_a_write_back_target_that_does_not_exist_fails(systems: Systems, tmp_path: Path) -> None:
    path = systems.mapping_file(tmp_path, 'writeback = "KnPerson.FiNm"', 'writeback = "KnPerson.Voornaam"')
    outcome = systems.check(CONNECTOR_MAPPING=path)
    targets = outcome.checks["write-back targets"]
    assert (targets["status"], targets["detail"]) == ("fail", "KnPerson has no field Voornaam (column FirstName)")
    assert "GET /metainfo/update/KnPerson" in targets["fix"]
    assert outcome.exit_code == 1


def test_a_yes_no_field_written_to_a_text_field_fails(systems: Systems, tmp_path: Path) -> None:
    path = systems.mapping_file(
        tmp_path, 'writeback = "KnContact.U74BB4FF508DD36A73F8DF61FDBBB8754"', 'writeback = "KnContact.TeNr"'
    )
    outcome = systems.check(CONNECTOR_MAPPING=path)
    targets = outcome.checks["write-back targets"]
    assert (targets["status"], targets["detail"]) == ("fail", "KnContact.TeNr is string, not a yes/no (boolean) field")
    assert outcome.exit_code == 1


def test_a_bounce_target_that_is_not_yes_no_fails(systems: Systems, tmp_path: Path) -> None:
    path = systems.mapping_file(
        tmp_path, 'writeback = "KnContact.U3E3988960B40ED53A073B30748E1CD6D"', 'writeback = "KnContact.EmAd"'
    )
    outcome = systems.check(CONNECTOR_MAPPING=path)
    bounce = outcome.checks["bounce write-back"]
    assert (bounce["status"], bounce["detail"]) == ("fail", "KnContact.EmAd is string, not a yes/no (boolean) field")
    assert bounce["fix"].startswith("set the mapping's [bounce] writeback to a yes/no free field of KnContact")
    assert outcome.failures() == {"bounce write-back"}


def test_rows_with_problems_warn_with_the_rule_each_breaks(systems: Systems) -> None:
    systems.afas.post("/reset", json={"contacts": 400, "seed": 5, "edge_cases": True}).raise_for_status()
    outcome = systems.check()
    assert outcome.exit_code == 0
    sample = outcome.checks["sample rows"]
    assert sample["status"] == "warn"
    assert sample["detail"].startswith("400 rows sampled, ")
    for lacking in ("without an organisation: ", "without a person: ", "without an e-mail address: "):
        assert lacking in sample["detail"]
    assert "every contact must hang under an organisation" in sample["fix"]


def test_a_getconnector_whose_rows_lack_organisations_fails(systems: Systems) -> None:
    systems.afas.post("/reset", json={"contacts": 800, "seed": 5, "edge_cases": True}).raise_for_status()
    systems.put_definition({**systems.definition(), "contact_types": ["PER"]})
    outcome = systems.check()
    assert outcome.exit_code == 1
    sample = outcome.checks["sample rows"]
    assert sample["status"] == "fail"
    assert sample["detail"].startswith("3 rows sampled, 0 usable; without an organisation: 3 (e.g. ContactId ")
    assert sample["detail"].endswith("no sampled row can be synced")
    assert sample["fix"].startswith("every contact must hang under an organisation: put private persons under")


def test_the_sample_reads_only_as_many_rows_as_asked(systems: Systems) -> None:
    systems.afas.delete("/requests").raise_for_status()
    outcome = systems.check("--sample", "25")
    assert outcome.checks["sample rows"]["detail"] == "25 rows sampled, all usable"
    assert systems.afas.get("/requests").json()["routes"]["GET /connectors/Spotler_Contacts"] == 1
    skipped = systems.check("--sample", "0")
    assert skipped.checks["sample rows"]["status"] == "skip"
    assert skipped.exit_code == 0
