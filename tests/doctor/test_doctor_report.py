"""Check results without any system: the URL rule, rendering, exit codes and masking."""

from __future__ import annotations

import msgspec
import pytest

from connector.doctor.config_checks import check_afas_url, check_mapping
from connector.doctor.report import (
    Check,
    exit_code,
    fail,
    ok,
    render_json,
    render_release,
    render_table,
    scrub,
    skip,
    warn,
)


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("https://12345.rest.afas.online/ProfitRestServices", "AFAS Online environment 12345 (production)"),
        ("https://12345.resttest.afas.online/ProfitRestServices/", "AFAS Online environment 12345 (test)"),
        ("https://54321.restaccept.afas.online/profitrestservices", "AFAS Online environment 54321 (accept)"),
    ],
)
def test_afas_online_urls_pass(url: str, detail: str) -> None:
    assert check_afas_url(url) == ok("AFAS URL", detail)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8701/ProfitRestServices", "http://localhost:8701/ProfitRestServices"],
)
def test_a_local_sandbox_passes_with_a_note(url: str) -> None:
    result = check_afas_url(url)
    assert result.status == "ok"
    assert result.detail.startswith("sandbox:")


@pytest.mark.parametrize(
    "url",
    [
        "http://12345.rest.afas.online/ProfitRestServices",  # not https
        "https://1234.rest.afas.online/ProfitRestServices",  # four digits
        "https://12345.rest.afas.online/",  # no ProfitRestServices
        "https://12345.restprod.afas.online/ProfitRestServices",
        "https://profit.example.nl/ProfitRestServices",  # on-premise
        "http://10.0.0.5/ProfitRestServices",
    ],
)
def test_anything_else_fails_with_the_expected_pattern(url: str) -> None:
    result = check_afas_url(url)
    assert result.status == "fail"
    assert "https://NNNNN.rest[test|accept].afas.online/ProfitRestServices" in result.fix


def test_an_unset_url_is_skipped() -> None:
    assert check_afas_url(None).status == "skip"


def test_the_shipped_example_mapping_loads_but_warns_outside_the_sandbox() -> None:
    result, mapping = check_mapping(None, sandbox=True)
    assert result.status == "ok"
    assert mapping is not None
    result, mapping = check_mapping(None, sandbox=False)
    assert result.status == "warn"
    assert "set CONNECTOR_MAPPING" in result.fix
    assert mapping is not None


def test_warnings_and_skips_do_not_fail_but_a_failure_does() -> None:
    assert exit_code([ok("a"), warn("b", "odd"), skip("c", "a failed")]) == 0
    assert exit_code([ok("a"), fail("b", "broken", "mend it")]) == 1


CHECKS = [
    ok("first check", "fine"),
    warn("second", "a little odd", "look at it"),
    fail("third", "broken " * 30, "mend it"),
    skip("fourth", "third failed"),
]


def test_the_table_puts_the_fix_under_failures_and_warnings() -> None:
    lines = render_table(CHECKS).splitlines()
    assert lines[0].split() == ["check", "result", "detail"]
    assert lines[2].split() == ["first", "check", "ok", "fine"]
    assert lines[3].startswith("second       warn    a little odd")
    assert lines[4] == " " * 21 + "fix: look at it"
    assert lines[5].startswith("third        FAIL    broken broken")
    fix = next(i for i, line in enumerate(lines) if "fix: mend it" in line)
    assert all(line.startswith(" " * 21 + "broken") for line in lines[6:fix])
    assert lines[fix + 1].startswith("fourth       skip    not checked: third failed")
    assert lines[-1] == "doctor FAILED: 4 checks, 1 FAIL, 1 warn, 1 ok, 1 skip"


def test_release_lines_hold_only_failures_warnings_and_the_verdict() -> None:
    lines = render_release(CHECKS).splitlines()
    assert lines[0].startswith("FAIL third: broken")
    assert lines[0].endswith("-> mend it")
    assert lines[1] == "warn second: a little odd -> look at it"
    assert lines[2] == "doctor FAILED: 4 checks, 1 FAIL, 1 warn, 1 ok, 1 skip"
    assert len(lines) == 3


def test_json_is_a_list_of_check_status_detail_fix() -> None:
    decoded = msgspec.json.decode(render_json(CHECKS), type=list[Check])
    assert decoded == CHECKS
    raw = msgspec.json.decode(render_json(CHECKS))
    assert raw[2] == {"check": "third", "status": "fail", "detail": "broken " * 30, "fix": "mend it"}


def test_secrets_and_e_mail_addresses_are_masked() -> None:
    checks = [fail("x", "refused token ABCDEF123 for jan@example.nl", "not ABCDEF123 again")]
    [masked] = scrub(checks, ["ABCDEF123", ""])
    assert masked.detail == "refused token *** for <email>"
    assert masked.fix == "not *** again"
