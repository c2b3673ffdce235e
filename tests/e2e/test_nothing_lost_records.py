"""Malformed rows and feed items: each one a rejection with its field and reason, the rest flows on.

The AFAS sandbox stores every value with the type of its field, so a row holds
a string in a yes/no column, or text in a date column, the way it happens in a
real environment: the GetConnector's column is defined over a text field
(here ``ProductNews`` over the contact's social-media field ``SocN``, and a
fourth modification-date column ``ReviewedOn`` over ``AtLn``). Spotler's
sandbox validates every value it stores; the one malformed item it can serve is
a contact whose externalId is blank.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.e2e.test_nothing_lost import (
    afas_edit,
    assert_in_agreement,
    dead_letters,
    define,
    definition,
    expectation,
    make_stack,
    mapped,
    plain,
    rejections,
    settle,
    spotler_now,
    start_link,
)

from connector.schemas.mapping import default_mapping_path, load_mapping
from connector.stack import Stack

pytestmark = pytest.mark.e2e

__all__ = ["make_stack"]  # the fixture, shared with the main module

NOT_A_BOOLEAN = "yes/no field is not a boolean (got str)"
BLANK_ID = " "


def text_columns(stack: Stack) -> None:
    """``ProductNews`` (permission bit 2) read from a text field, and a text column ``ReviewedOn``."""
    defn = definition(stack)
    columns: list[dict[str, Any]] = []
    for column in defn["columns"]:
        if column["id"] == "ProductNews":
            column = {**column, "source": "contact.SocN"}
        columns.append(column)
    columns.append({"id": "ReviewedOn", "source": "contact.AtLn", "label": "Beoordeeld op"})
    define(stack, {**defn, "columns": columns})


def reviewed_on_mapping(tmp_path: Path) -> Path:
    """The example mapping with ``ReviewedOn`` as a fourth modification date."""
    text = default_mapping_path().read_text()
    old = 'modified = ["ContactModified", "PersonModified", "OrganisationModified"]'
    assert old in text
    path = tmp_path / "mapping.toml"
    path.write_text(text.replace(old, old[:-1] + ', "ReviewedOn"]'))
    return path


def test_malformed_rows_and_feed_items_are_rejected_and_the_rest_flows(
    make_stack: Callable[..., Stack], redis_client: redis.Redis, tmp_path: Path
) -> None:
    path = reviewed_on_mapping(tmp_path)
    mapping = load_mapping(path)
    stack = make_stack(600, seed=28, CONNECTOR_MAPPING=str(path))
    text_columns(stack)
    start_link(stack)
    settle(stack, redis_client, cycles=2)
    valid = assert_in_agreement(stack, mapping=mapping)
    before = spotler_now(stack)
    known = rejections(stack)
    bad_yesno, bad_date, new_email, new_name, from_spotler = plain(valid)[:5]

    afas_edit(stack, "contact", bad_yesno, SocN="Ja", EmAd=f"ja.{bad_yesno}@voorbeeld.nl")
    afas_edit(stack, "contact", bad_date, AtLn="gisteren", EmAd=f"gisteren.{bad_date}@voorbeeld.nl")
    afas_edit(stack, "contact", new_email, EmAd=f"nieuw.{new_email}@voorbeeld.nl")
    afas_edit(stack, "person", valid[new_name].person_id, FiNm="Gerdien")
    stack.spotler("POST", "contacts", json={"contacts": [
        {"externalId": BLANK_ID, "properties": {"email": "zonder.id@voorbeeld.nl"}}]})
    stack.spotler("POST", "edit", json={"externalId": from_spotler, "properties": {"lastName": "Terugschrijver"}})
    settle(stack, redis_client)

    assert rejections(stack) == known | {
        ("afas", bad_yesno, "ProductNews", NOT_A_BOOLEAN),
        ("afas", bad_date, "ReviewedOn", "modification date is not a date"),
        ("spotler", None, "externalId", "unreadable updates feed item: is empty"),
    }
    # The rejected contacts keep what Spotler had; every other change went through, both ways.
    after = spotler_now(stack)
    held = (bad_yesno, bad_date)
    assert {cid: after[cid] for cid in held} == {cid: before[cid] for cid in held}
    assert stack.afas("GET", f"contacts/{from_spotler}")["LastName"] == "Terugschrijver"
    expected = {cid: v for cid, v in mapped(valid).items() if cid not in held}
    expected[new_email] = {**expected[new_email], "email": f"nieuw.{new_email}@voorbeeld.nl"}
    expected[new_name] = {**expected[new_name], "firstName": "Gerdien"}
    expected[from_spotler] = {**expected[from_spotler], "lastName": "Terugschrijver"}
    assert mapped(expectation(stack, mapping)) == expected
    assert {cid: v for cid, v in after.items() if cid not in (*held, BLANK_ID)} == expected
    assert [proc for proc, p in stack.processes.items() if not p.alive()] == []
    assert dead_letters(redis_client) == 0


def test_a_yes_no_column_holding_the_string_false_or_0_never_opts_in(
    make_stack: Callable[..., Stack], redis_client: redis.Redis
) -> None:
    stack = make_stack(600, seed=29)
    text_columns(stack)  # the example mapping reads ProductNews (permission bit 2) from it
    start_link(stack)
    settle(stack, redis_client, cycles=2)
    valid = assert_in_agreement(stack)
    known = rejections(stack)
    strings = {cid: text for cid, text in zip(plain(valid)[:2], ("false", "0"), strict=True)}
    before = {cid: stack.spotler("GET", f"contacts/{cid}") for cid in strings}
    assert {cid: spotler_now(stack)[cid]["permissions.2"] for cid in strings} == dict.fromkeys(strings, False)

    for cid, text in strings.items():
        afas_edit(stack, "contact", cid, SocN=text, EmAd=f"tekst.{cid}@voorbeeld.nl")
    settle(stack, redis_client)
    assert rejections(stack) == known | {("afas", cid, "ProductNews", NOT_A_BOOLEAN) for cid in strings}
    # Not written at all: Spotler still holds the opt-out and the old address.
    assert {cid: stack.spotler("GET", f"contacts/{cid}") for cid in strings} == before

    # Once AFAS holds no text there, the contact syncs again and its rejection is gone.
    for cid in strings:
        afas_edit(stack, "contact", cid, SocN="")
    settle(stack, redis_client)
    assert rejections(stack) == known
    expected = mapped(valid)
    for cid in strings:
        expected[cid] = {**expected[cid], "email": f"tekst.{cid}@voorbeeld.nl"}
    assert_in_agreement(stack, expected)
    assert dead_letters(redis_client) == 0
