"""The redaction policy: free text, personal fields, secrets in URLs, log records."""

from __future__ import annotations

import logging

import pytest

from connector.errors import RecordRejected
from connector.redaction import (
    RedactingFilter,
    is_personal,
    mask_fields,
    mask_value,
    redact,
    redact_every_record,
    shown_value,
)
from connector.settings import Settings

SPELLINGS = [
    "sweep.person@example.org",
    "Sweep.PERSON@Example.Org",
    "sweep.person%40example.org",
    "SWEEP.PERSON%40EXAMPLE.ORG",
    "sweep.person\uff20example.org",
    "sweep.person&#64;example.org",
    '"sweep person"@example.org',
    '\\"sweep person\\"@example.org',
    "%22sweep%20person%22%40example.org",
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_an_address_is_masked(spelling: str) -> None:
    masked = redact(f"Spotler refused {spelling}, try again")
    assert masked == "Spotler refused <email>, try again"


@pytest.mark.parametrize(("text", "expected"), [
    ("redis://default:hunter2@redis.example.net:6379/0", "redis://default:<secret>@redis.example.net:6379/0"),
    ("rediss://:hunter2@host:6380", "rediss://:<secret>@host:6380"),
    ("GET /status.json?token=s3cret-status&x=1", "GET /status.json?token=<secret>&x=1"),
    ("oauth_signature=abc%3D&oauth_nonce=1", "oauth_signature=<secret>&oauth_nonce=1"),
    ("Authorization: Bearer s3cret-status-token", "Authorization: Bearer <secret>"),
    ("Authorization: AfasToken PHRva2VuPjx2ZXJzaW9u", "Authorization: AfasToken <secret>"),
    ("<token><version>1</version><data>D5A5E3F1</data></token>",
     "<token><version>1</version><data><secret></data></token>"),
])
def test_secrets_in_urls_and_headers_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("phone", ["+31 6 12345678", "+31 (0)20 123 4567", "0031 6 1234 5678", "06-12345678",
                                   "020 123 4567", "+31612345678"])
def test_phone_numbers_are_masked(phone: str) -> None:
    assert redact(f"call {phone} now") == "call <phone> now"


@pytest.mark.parametrize("text", [
    "contact 10042 person 12345678 organisation 00123456789",
    "2026-12-01 13:14:44,123 INFO poll took 0.25s",
    "HTTP 503 after 3 attempts, retry in 30s",
    "message 4f1e0c9a-7b5e-4c1e-9a0b-1a2b3c4d5e6f",
    "Basic settings are missing; a bearer realm",
])
def test_ids_times_and_counts_stay_visible(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("field", [
    "email", "Email", "KnContact.EmAd", "firstName", "FirstName", "KnPerson.FiNm", "lastName", "KnPerson.LaNm",
    "infix", "Prefix", "Initials", "Gender", "Phone", "TelWork", "MobWork", "Street", "HouseNumber", "PostalCode",
    "City", "city", "BirthDate", "KnPerson.DaBi", "OrganisationName",
])
def test_personal_fields(field: str) -> None:
    assert is_personal(field)


@pytest.mark.parametrize("field", [
    "ContactId", "contact_id", "PersonNo", "OrganisationId", "externalId", "permissions.1", "Newsletter",
    "Blocked", "customerType", "sector", "ContactModified", "actor_name", "queue_name", "message_id",
])
def test_ids_and_flags_are_not_personal(field: str) -> None:
    assert not is_personal(field)


def test_mask_value_is_a_digest_that_keeps_equal_values_equal() -> None:
    assert mask_value("Quixley") == mask_value(" quixley ") != mask_value("Quixly")
    assert mask_value("Quixley").startswith("<personal ")
    assert mask_value("sweep.person@example.org").startswith("<e-mail ")
    assert [mask_value(v) for v in (None, True, "", 3)] == [None, True, "", 3]
    assert shown_value("lastName", "Quixley") == mask_value("Quixley")
    assert shown_value("sector", "Retail") == "'Retail'"
    assert shown_value("customerType", "mail sweep.person@example.org") == "'mail <email>'"


def test_mask_fields_by_key_by_sibling_and_in_array_rows() -> None:
    payload = {
        "queue_name": "spotler", "actor_name": "upsert_batch", "message_id": "m-1",
        "kwargs": {"contact_id": "10042", "changes": {"firstName": "Zebulon", "permissions.1": True},
                   "writes": [["lastName", "Quixley", 1700000000000, -1], ["sector", "Retail", 1, -1]],
                   "note": "owner sweep.person@example.org"},
        "conflict": {"field": "lastName", "afas_value": "Quixley", "spotler_value": "Quixly", "rule": "newest"},
    }
    masked = mask_fields(payload)
    assert masked["queue_name"] == "spotler"
    assert masked["actor_name"] == "upsert_batch"
    assert masked["kwargs"]["contact_id"] == "10042"
    assert masked["kwargs"]["changes"] == {"firstName": mask_value("Zebulon"), "permissions.1": True}
    assert masked["kwargs"]["writes"] == [["lastName", mask_value("Quixley"), 1700000000000, -1],
                                          ["sector", "Retail", 1, -1]]
    assert masked["kwargs"]["note"] == "owner <email>"
    assert masked["conflict"] == {"field": "lastName", "afas_value": mask_value("Quixley"),
                                  "spotler_value": mask_value("Quixly"), "rule": "newest"}


def test_settings_repr_masks_the_redis_password() -> None:
    settings = Settings.from_env({"REDIS_URL": "redis://default:hunter2@redis.example.net:6379"})
    assert "hunter2" not in repr(settings)
    assert "redis://default:<secret>@redis.example.net:6379" in repr(settings)


def test_errors_are_redacted_when_raised() -> None:
    error = RecordRejected("Spotler refused sweep.person%40example.org", detail="phone +31 6 12345678")
    assert str(error) == "Spotler refused <email>"
    assert error.detail == "phone <phone>"


def test_a_log_record_is_redacted_for_every_handler_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    previous = logging.getLogRecordFactory()
    redact_every_record()
    try:
        try:
            raise ValueError("refused \"sweep person\"@example.org, +31 6 12345678")
        except ValueError:
            logging.getLogger("connector.test").exception("write of %s failed", "sweep.person\uff20example.org")
    finally:
        logging.setLogRecordFactory(previous)
    [record] = [r for r in caplog.records if r.name == "connector.test"]
    text = caplog.text
    assert record.getMessage() == "write of <email> failed"
    assert "ValueError: refused <email>, <phone>" in text
    assert "sweep" not in text
    assert "12345678" not in text


def test_the_filter_redacts_a_record_it_is_handed() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "to %s via %s", ("a@b.nl", "redis://:pw@h"), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "to <email> via redis://:<secret>@h"
