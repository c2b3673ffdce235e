"""Personal-data sweep: one contact's personal data goes through every path; no exit shows any of it.

The contact (an e-mail address, a first and last name, a phone number, a street
and a city found nowhere else) is seeded into the AFAS sandbox and synced by the
real processes; a second AFAS contact loses its address (rejected); Spotler
holds a contact whose externalId is the address (rejected by the Spotler
producer); a conflict and a dead letter are recorded
as the producers and workers record them; an exception carrying the address in
its spellings and the phone number is logged with its traceback. Then every
exit is read and searched for the values (case-insensitive, URL-encoded too).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import redis
from click.testing import CliRunner

from connector.cli.main import cli
from connector.sandbox.server import free_port
from connector.schemas.events import ContactChange, SpotlerBatch
from connector.stack import Stack, wait_until
from connector.state.conflicts import ConflictStore
from connector.state.rejections import RejectionStore
from connector.sync.merge import Conflict
from connector.testplan import PlanReport, StepResult, render_markdown, write_report
from connector.workers.actor import dead_letter_item
from connector.workers.actors_spotler import upsert_batch

pytestmark = pytest.mark.e2e

EMAIL = "sweep.person@example.org"
SPELLINGS = [EMAIL, EMAIL.upper(), "sweep.person%40example.org", "sweep.person\uff20example.org",
             '"sweep person"@example.org', "Sweep.Person&#64;Example.org"]
FIRST, LAST, LAST_IN_SPOTLER = "Zebulonius", "Quixwhistle", "Quixwhistle-Brandaris"
PHONE = "+31 6 48151623"
STREET, CITY = "Zwaluwstaartsteeg", "Quixlestad"
# What must never show: the values, and the parts an imperfect mask would leave.
PERSONAL = [EMAIL, "sweep.person", "sweep person", "sweep%20person", FIRST, LAST, LAST_IN_SPOTLER,
            "48151623", STREET, CITY]
TOKEN = "sweep-status-token"


def leaks(text: str) -> list[str]:
    """The personal values found in ``text``: as they are, lower case, URL-encoded."""
    low = text.lower()
    return [value for value in PERSONAL
            if any(form.lower() in low for form in {value, quote(value), quote_plus(value)})]


def read_status(base_url: str, path: str) -> str:
    """One protected web route, authorised the way the page expects (kept here, in one place)."""
    response = httpx.get(f"{base_url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, (path, response.status_code)
    return response.text


@pytest.fixture
def stack(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Stack]:
    with Stack(tmp_path, redis_url=redis_url, contacts=30, seed=5,
               env={"POLL_INTERVAL_S": "1", "STATUS_TOKEN": TOKEN}) as running:
        running.start_sandboxes()
        yield running


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """The CLI installs the redacting log record factory in this process: put the previous one back."""
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)


def seed_personal_data(stack: Stack) -> tuple[Any, Any]:
    valid, _ = stack.afas_records()
    person, other = sorted(valid.values(), key=lambda r: r.contact_id)[:2]
    edit = [
        ("contact", person.contact_id, {"EmAd": EMAIL, "TeNr": PHONE}),
        ("person", person.person_id, {"FiNm": FIRST, "LaNm": LAST}),
        ("organisation", person.organisation_id, {"Ad": STREET, "HmNr": 7, "Rs": CITY}),
        ("contact", other.contact_id, {"EmAd": None}),
    ]
    for entity, ident, fields in edit:
        stack.afas("POST", "edit", json={"entity": entity, "id": ident, "fields": fields})
    return person, other


def run(*args: str, env: dict[str, str], input: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)
    assert result.exit_code in (0, 1, 2, 3), (args, result.exit_code, result.output)
    return result.output


def test_no_exit_shows_personal_data(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    restored_logging: None,
) -> None:
    caplog.set_level(logging.INFO)
    person, other = seed_personal_data(stack)
    web_port = free_port()
    for name, *args in (("spotler-worker", "work", "--queue", "spotler"), ("afas-worker", "work", "--queue", "afas"),
                        ("afas-producer", "produce", "afas"), ("spotler-producer", "produce", "spotler"),
                        ("web", "web", "--port", str(web_port))):
        stack.start(name, *args)
    rejections = RejectionStore(redis_client)

    # Synced: Spotler holds the contact with its personal data.
    def synced() -> bool:
        found = [c for c in stack.spotler("GET", "contacts") if c["externalId"] == person.contact_id]
        return bool(found) and found[0]["properties"].get("email") == EMAIL
    wait_until(synced, timeout_s=120)
    # Rejected: the quoted address in AFAS; a Spotler contact whose externalId is the address.
    stack.spotler("POST", "contacts", json={"contacts": [
        {"externalId": EMAIL, "properties": {"email": EMAIL, "firstName": FIRST, "lastName": LAST}}]})
    wait_until(lambda: {(r.source, r.contact_id) for r in rejections.list()}
               >= {("afas", other.contact_id), ("spotler", EMAIL)}, timeout_s=120)
    # A conflict as the producers record it, on a name and on the address.
    ConflictStore(redis_client).add_many([
        Conflict(contact_id=person.contact_id, field="lastName", afas_value=LAST, spotler_value=LAST_IN_SPOTLER,
                 agreed_value=None, rule="newest", winner="spotler", value=LAST_IN_SPOTLER),
        Conflict(contact_id=person.contact_id, field="email", afas_value=EMAIL, spotler_value=EMAIL.upper(),
                 agreed_value=EMAIL, rule="newest", winner="afas", value=EMAIL),
    ])
    # A dead letter as a worker records one: the contact's change, an error quoting the address.
    change = ContactChange(contact_id=person.contact_id, changes={"email": EMAIL, "firstName": FIRST,
                                                                  "lastName": LAST, "city": CITY})
    letter = dead_letter_item(upsert_batch, SpotlerBatch(changes=[change]),
                              error=ValueError(f"Spotler refused {' / '.join(SPELLINGS)} ({PHONE})"),
                              entity_key=f"contact:{person.contact_id}")
    # An exception carrying the address in its spellings and the phone number, logged with its traceback.
    env = stack.env()
    run("runs", env=env)  # sets up logging as every process does
    try:
        raise RuntimeError(f"write of {' and '.join(SPELLINGS)} at {PHONE} failed")
    except RuntimeError:
        logging.getLogger("connector.workers").exception("contact %s failed", EMAIL)

    report = PlanReport(run_id="sweep", afas=env["AFAS_BASE_URL"], getconnector="Spotler_Contacts",
                        spotler=env["SPOTLER_BASE_URL"], started_at=1.0, finished_at=2.0,
                        steps=[StepResult(number=1, title="create", outcome="fail", started_at=1.0, duration_s=1.0)])
    for spelling in SPELLINGS:
        report.steps[0].note(f"Spotler answered: {spelling} is invalid; call {PHONE}")
    web = f"http://127.0.0.1:{web_port}"
    wait_until(lambda: _answers(web), timeout_s=60)

    exits: dict[str, str] = {
        "status page": read_status(web, "/"),
        "status.json": read_status(web, "/status.json"),
        "metrics": read_status(web, "/metrics"),
        "trace page": read_status(web, f"/trace?contact={person.contact_id}"),
        "trace.json": read_status(web, f"/trace.json?contact={person.contact_id}"),
        "trace page, an address asked": httpx.get(f"{web}/trace", params={"contact": EMAIL},
                                                  headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).text,
        "status": run("status", env=env),
        "status --json": run("status", "--json", env=env),
        "runs": run("runs", "--json", env=env),
        "rejects": run("rejects", env=env),
        "rejects --json": run("rejects", "--json", env=env),
        "conflicts": run("conflicts", env=env),
        "conflicts --json": run("conflicts", "--json", env=env),
        "dlq list": run("dlq", "list", env=env),
        "dlq list --json": run("dlq", "list", "--json", env=env),
        "dlq show": run("dlq", "show", letter.id, env=env),
        "dlq show --json": run("dlq", "show", letter.id, "--json", env=env),
        "dlq show --reveal, refused": run("dlq", "show", letter.id, "--reveal", input="n\n", env=env),
        "trace": run("trace", person.contact_id, env=env),
        "trace --json": run("trace", person.contact_id, "--json", env=env),
        "doctor": run("doctor", env=env),
        "doctor --json": run("doctor", "--json", env=env),
        "testplan report": write_report(report, tmp_path / "testplan.md").read_text(),
        "testplan markdown": render_markdown(report),
    }
    revealed = run("dlq", "show", letter.id, "--reveal", "--yes", env=env)
    for process in stack.processes.values():
        stack_logs = process.log_path.read_text(errors="replace")
        if not process.name.endswith("-sandbox"):  # the sandboxes stand for AFAS and Spotler, not the link
            exits[f"{process.name} log"] = stack_logs
    exits["this process's log"] = caplog.text

    assert {name: found for name, text in exits.items() if (found := leaks(text))} == {}
    # The sweep saw the data where it is allowed, and the ids where operators need them.
    assert FIRST in revealed
    assert other.contact_id in exits["rejects"]
    assert "<email>" in exits["rejects"]
    assert {r["contact_id"] for r in json.loads(exits["rejects --json"])} >= {other.contact_id, "<email>"}
    assert person.contact_id in exits["conflicts"]
    assert letter.id in exits["dlq show"]
    assert exits["trace"].startswith(f"contact {person.contact_id}: dead-lettered: {letter.id}")
    assert "<e-mail " in exits["trace"]  # the values, as digests
    assert json.loads(exits["trace.json"])["verdict"].startswith(f"dead-lettered: {letter.id}")
    assert f'data-value="dead-lettered: {letter.id}' in exits["trace page"]
    assert "not an e-mail address" in exits["trace page, an address asked"]
    assert "<email>" in exits["spotler-producer log"]
    assert "contact <email> failed" in exits["this process's log"]
    assert "Traceback" in exits["this process's log"]
    assert f"dead letter {letter.id} shown unmasked" in caplog.text


def _answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False
