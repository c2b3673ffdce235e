"""``connector doctor`` on a correct set-up, and on missing settings, a foreign URL and bad mappings."""

from __future__ import annotations

from pathlib import Path

from tests.doctor.systems import Systems

from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.spotler.app import DEFAULT_SECRET

EVERY_CHECK = [
    "AFAS settings",
    "Spotler settings",
    "mapping file",
    "AFAS URL",
    "AFAS token",
    "GetConnector granted",
    "GetConnector keys",
    "GetConnector columns",
    "newsletter fields yes/no",
    "UpdateConnectors granted",
    "write-back targets",
    "bounce write-back",
    "sample rows",
    "Spotler credentials",
    "Spotler properties",
    "Spotler permissions",
]


def test_a_correct_set_up_passes_every_check(systems: Systems) -> None:
    outcome = systems.check()
    assert outcome.exit_code == 0
    assert list(outcome.checks) == EVERY_CHECK
    assert {name: c["status"] for name, c in outcome.checks.items()} == dict.fromkeys(EVERY_CHECK, "ok")
    assert "sandbox" in outcome.checks["AFAS URL"]["detail"]
    assert outcome.checks["sample rows"]["detail"].startswith("60 rows sampled, all usable")
    assert all(set(c) == {"check", "status", "detail", "fix"} for c in outcome.checks.values())


def test_the_table_shows_each_check_and_the_verdict(systems: Systems) -> None:
    outcome = systems.run()
    assert outcome.exit_code == 0
    lines = outcome.output.splitlines()
    for name in EVERY_CHECK:
        assert any(line.startswith(name) and " ok " in line for line in lines), name
    assert lines[-1] == "doctor passed: 16 checks, 16 ok"
    assert "FAIL" not in outcome.output


def test_release_output_is_terse(systems: Systems) -> None:
    passed = systems.run("--release")
    assert (passed.exit_code, passed.output.strip()) == (0, "doctor passed: 16 checks, 16 ok")
    failed = systems.run("--release", SPOTLER_SECRET="not-the-secret")
    assert failed.exit_code == 1
    lines = failed.output.strip().splitlines()
    assert lines[0].startswith("FAIL Spotler credentials: key or secret refused (HTTP 401) -> set SPOTLER_KEY")
    assert lines[-1] == "doctor FAILED: 16 checks, 1 FAIL, 13 ok, 2 skip"


def test_missing_settings_name_the_variable_to_set(systems: Systems) -> None:
    outcome = systems.check(SPOTLER_KEY=None, AFAS_TOKEN=None)
    assert outcome.exit_code == 1
    afas, spotler = outcome.checks["AFAS settings"], outcome.checks["Spotler settings"]
    assert (afas["status"], afas["detail"]) == ("fail", "missing: AFAS_TOKEN")
    assert afas["fix"].startswith("set AFAS_TOKEN (the App Connector token")
    assert (spotler["status"], spotler["detail"]) == ("fail", "missing: SPOTLER_KEY")
    assert spotler["fix"] == "set SPOTLER_KEY (Spotler REST API consumer key)"
    assert outcome.checks["AFAS token"] == {
        "check": "AFAS token", "status": "skip", "detail": "not checked: AFAS settings are missing", "fix": "",
    }
    assert outcome.status("Spotler credentials") == "skip"
    assert outcome.status("mapping file") == "ok"


def test_a_url_that_is_not_afas_online_fails_and_the_token_is_not_sent(systems: Systems) -> None:
    systems.afas.delete("/requests").raise_for_status()
    outcome = systems.check(AFAS_BASE_URL="https://afas.example.com/ProfitRestServices")
    assert outcome.exit_code == 1
    url = outcome.checks["AFAS URL"]
    assert url["status"] == "fail"
    assert "is not an AFAS Online REST URL" in url["detail"]
    assert url["fix"] == (
        "set AFAS_BASE_URL to https://NNNNN.rest[test|accept].afas.online/ProfitRestServices "
        "with your 5-digit environment number"
    )
    assert outcome.checks["AFAS token"]["detail"] == "not checked: the AFAS URL is not AFAS Online"
    assert outcome.failures() == {"AFAS URL"}
    assert outcome.status("Spotler permissions") == "ok"


def test_a_mapping_that_writes_back_the_company_name_is_refused(systems: Systems, tmp_path: Path) -> None:
    path = systems.mapping_file(
        tmp_path, 'property = "organisation"', 'property = "organisation"\nwriteback = "KnOrganisation.Nm"'
    )
    outcome = systems.check(CONNECTOR_MAPPING=path)
    assert outcome.exit_code == 1
    mapping = outcome.checks["mapping file"]
    assert mapping["status"] == "fail"
    assert "company name (KnOrganisation.Nm) is never written back to AFAS" in mapping["detail"]
    assert mapping["fix"].startswith(f"correct the mapping file {path}")
    for dependent in ("GetConnector keys", "write-back targets", "sample rows", "Spotler properties"):
        assert outcome.checks[dependent]["detail"] == "not checked: the mapping file did not load", dependent
    assert outcome.status("AFAS token") == "ok"
    assert outcome.status("UpdateConnectors granted") == "ok"


def test_a_mapping_with_an_unknown_key_is_refused(systems: Systems, tmp_path: Path) -> None:
    path = systems.mapping_file(tmp_path, 'owner = "afas"', 'owner = "afas"\ndirection = "both"')
    outcome = systems.check(CONNECTOR_MAPPING=path)
    assert outcome.exit_code == 1
    mapping = outcome.checks["mapping file"]
    assert mapping["status"] == "fail"
    assert "direction" in mapping["detail"]
    assert outcome.failures() == {"mapping file"}


def test_no_secret_and_no_e_mail_address_is_ever_printed(systems: Systems) -> None:
    systems.afas.post("/reset", json={"contacts": 300, "seed": 3, "edge_cases": True}).raise_for_status()
    texts = [
        systems.run().output,
        systems.run("--json").output,
        systems.run(AFAS_TOKEN=DEFAULT_TOKEN.replace("5A1B", "0000")).output,
        systems.run("--release", SPOTLER_SECRET="wrong-" + DEFAULT_SECRET).output,
    ]
    for text in texts:
        assert "@" not in text
        assert "5A1B0C3D" not in text
        assert DEFAULT_SECRET not in text
