from __future__ import annotations

from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.schemas.mapping import decode_mapping, default_mapping_path, load_mapping

ROOT = Path(__file__).resolve().parents[2]

BASE = """
[[fields]]
column = "Email"
property = "email"
writeback = "KnContact.EmAd"
"""


def test_example_mapping_loads_and_is_the_deploy_copy() -> None:
    mapping = load_mapping(None)
    assert (ROOT / "deploy" / "mapping.example.toml").read_bytes() == default_mapping_path().read_bytes()
    by_name = {f.name: f for f in mapping.fields}
    assert str(by_name["lastName"].target) == "KnPerson.LaNm"
    assert by_name["permissions.1"].type == "yesno"
    assert by_name["sector"].target is None
    assert by_name["organisation"].target is None
    assert mapping.columns[:3] == ["ContactId", "PersonNo", "OrganisationId"]


def test_unknown_key_is_rejected_with_its_name() -> None:
    with pytest.raises(ConfigError, match="colour"):
        decode_mapping(BASE + 'colour = "blue"\n')


def test_not_toml() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        decode_mapping("[[fields]\n")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[fields]]\ncolumn = "Sector"\nproperty = "sector"\ntype = "tablelink"\nwriteback = "KnOrganisation.ViLb"\n',
         "table-link"),
        ('[[fields]]\ncolumn = "OrganisationName"\nproperty = "organisation"\nwriteback = "KnOrganisation.Nm"\n',
         "company name"),
        ('[[fields]]\ncolumn = "City"\nproperty = "city"\nwriteback = "KnOrganisation.Rs"\n', "city"),
        ('[[fields]]\ncolumn = "X"\nproperty = "x"\nwriteback = "KnSubject.Ds"\n', "UpdateConnector"),
        ('[[fields]]\ncolumn = "N"\npermission_bit = 1\ntype = "text"\n', "permission bit"),
        ('[[fields]]\ncolumn = "N"\npermission_bit = 1\nproperty = "n"\ntype = "yesno"\n', "exactly one"),
        ('[[fields]]\ncolumn = "Other"\nproperty = "email"\n', "mapped twice"),
        ('[bounce]\nwriteback = "KnPerson.U1"\n', "bounce.writeback"),
    ],
)
def test_write_back_rules_are_enforced(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        decode_mapping(BASE + extra)


def test_email_field_is_required() -> None:
    with pytest.raises(ConfigError, match="'email'"):
        decode_mapping('[[fields]]\ncolumn = "FirstName"\nproperty = "firstName"\n')


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read mapping"):
        load_mapping(tmp_path / "nope.toml")
