"""Rejections and conflicts as the status report, ``connector rejects`` and ``connector conflicts`` show them."""

from __future__ import annotations

import json

import click
import msgspec
import pytest
import redis
from click.testing import CliRunner

from connector.cli.context import AppContext
from connector.cli.produce import conflicts, rejects
from connector.redaction import mask_value
from connector.settings import Settings
from connector.state.conflicts import ConflictStore
from connector.state.rejections import RejectionStore
from connector.status.collect import collect
from connector.sync.merge import Conflict
from connector.sync.rows import Rejection

EMAIL = "Marieke.deVries%40Example.com"
NAMES = ("de Vries", "de Vries-Bakker")


@pytest.fixture
def recorded(redis_client: redis.Redis) -> None:
    RejectionStore(redis_client).add_many([
        Rejection(contact_id=EMAIL, field="externalId", reason="unknown to AFAS", source="spotler"),
        Rejection(contact_id="10042", field="Email", reason="invalid e-mail address"),
    ])
    ConflictStore(redis_client).add_many([
        Conflict(contact_id="10042", field="lastName", afas_value=NAMES[0], spotler_value=NAMES[1],
                 agreed_value=None, rule="newest", winner="spotler", value=NAMES[1]),
        Conflict(contact_id="10043", field="customerType", afas_value=f"x {EMAIL}", spotler_value="Retail",
                 agreed_value=None, rule="owner:afas", winner="afas", value="Retail"),
    ])


def _invoke(command: click.Command, *args: str) -> str:
    result = CliRunner().invoke(command, list(args), obj=AppContext(settings=Settings.from_env()),
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _leaks(text: str) -> list[str]:
    return [v for v in ("marieke", *NAMES) if v.lower() in text.lower()]


@pytest.mark.usefixtures("recorded")
def test_an_externalid_that_is_an_address_is_masked_in_the_report(redis_client: redis.Redis) -> None:
    report = collect(redis_client, Settings.from_env())
    assert {r.contact_id for r in report.rejections.latest} == {"<email>", "10042"}
    assert {c.contact_id for c in report.conflicts.latest} == {"10042", "10043"}
    assert _leaks(msgspec.json.encode(report).decode()) == []


@pytest.mark.usefixtures("recorded")
def test_rejects_masks_the_address_and_keeps_ids() -> None:
    text, data = _invoke(rejects), _invoke(rejects, "--json")
    assert _leaks(text + data) == []
    assert {r["contact_id"] for r in json.loads(data)} == {"<email>", "10042"}
    assert "10042" in text
    assert "<email>" in text


@pytest.mark.usefixtures("recorded")
def test_conflicts_mask_personal_values_in_text_and_json() -> None:
    text, data = _invoke(conflicts), _invoke(conflicts, "--json")
    assert _leaks(text + data) == []
    assert f"{mask_value(NAMES[0])} → {mask_value(NAMES[1])}" in text
    assert "'x <email>' → 'Retail'" in text  # not a personal field: shown, its address still masked
    by_field = {r["conflict"]["field"]: r["conflict"] for r in json.loads(data)}
    assert by_field["lastName"]["afas_value"] == mask_value(NAMES[0])
    assert by_field["lastName"]["contact_id"] == "10042"
    assert by_field["customerType"]["spotler_value"] == "Retail"
