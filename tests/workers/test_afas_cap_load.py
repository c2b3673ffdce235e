"""The AFAS write actor through real workers: dead letters, its log line, and the shared cap.

The load test runs two ``connector work --queue afas`` OS processes against
one in-process AFAS sandbox that adds latency to every call, and checks with
the sandbox's own counters that no more calls were ever in flight than
``AFAS_MAX_PARALLEL`` allows, and that every change arrived.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from connector.clients.afas import AfasClient
from connector.sandbox.afas.app import DEFAULT_TOKEN, AfasSandbox
from connector.sandbox.afas.catalogue import NEWSLETTER
from connector.sandbox.afas.testing import running_sandbox
from connector.schemas.events import AfasChange, Value
from connector.schemas.mapping import load_mapping
from connector.stack import ManagedProcess, connector_command, wait_until
from connector.state.keys import COUNTERS
from connector.state.limits import ConcurrencyCap
from connector.state.ordering import Ordering
from connector.state.queues import outstanding
from connector.workers.actor import send
from connector.workers.actors_afas import AFAS_QUEUE, AfasDeps, apply, apply_afas_change, declare
from connector.workers.dead_letters import DeadLetterStore

StartWorker = Callable[..., dramatiq.Worker]
EMAIL = "nieuw.adres@example.org"
CAP = 3
WORKER_PROCESSES = 2
_serial = itertools.count()


@pytest.fixture
def sandbox() -> Iterator[tuple[str, AfasSandbox]]:
    with running_sandbox(contacts=240, seed=5) as (server, app):
        yield server.url, app


def person_contacts(app: AfasSandbox) -> list[dict[str, Any]]:
    """Keys of person contacts under an organisation that receive the newsletter, one per person."""
    seen: set[str] = set()
    found = []
    with app.afas.lock:
        for c in app.afas.store.contacts.values():
            if c.kind == "PRS" and c.org and c.person and c.fields.get(NEWSLETTER) is True and c.person not in seen:
                seen.add(c.person)
                found.append({"ContactId": c.cd_id, "PersonNo": c.person, "OrganisationId": c.org})
    return found


def change_for(contact: dict[str, Any], changes: dict[str, Value], **keys: str) -> AfasChange:
    return AfasChange(
        contact_id=str(contact["ContactId"]),
        person_id=keys.get("person_id", str(contact["PersonNo"])),
        organisation_id=str(contact["OrganisationId"]),
        changes=changes,
        # Stamped now: a change that has not waited is written without reading the row first.
        stamps=dict.fromkeys(changes, int(time.time() * 1000) + next(_serial)),
        bases=dict.fromkeys(changes, 0),
    )


def deps_for(url: str, client: redis.Redis) -> AfasDeps:
    return AfasDeps(
        client=AfasClient(f"{url}/ProfitRestServices", DEFAULT_TOKEN, timeout=10,
                          gate=ConcurrencyCap(client, "afas", CAP).slot),
        redis=client,
        mapping=load_mapping(None),
        ordering=Ordering(client),
    )


def test_a_validation_failure_ends_in_the_dead_letters_with_the_afas_reference(
    sandbox: tuple[str, AfasSandbox], broker: RedisBroker, redis_client: redis.Redis, start_worker: StartWorker
) -> None:
    url, app = sandbox
    deps = deps_for(url, redis_client)
    actor = declare(broker, deps=lambda: deps)
    contact = person_contacts(app)[0]
    send(actor, change_for(contact, {"firstName": "Anne-Fleur"}, person_id="999999"))

    worker = start_worker(broker)
    broker.join(AFAS_QUEUE, timeout=30_000)
    worker.join()

    [letter] = DeadLetterStore(redis_client).list()
    assert (letter.reason, letter.error_class, letter.queue) == ("fatal", "RecordRejected", AFAS_QUEUE)
    assert letter.entity_key == f"contact:{contact['ContactId']}"
    assert letter.attempts == 1
    assert "The entered value for 'person' (999999) does not exist." in letter.error  # externalMessage
    assert "profitLogReference" in letter.error
    assert httpx.get(f"{url}/_sandbox/requests").json()["routes"] == {"PUT /connectors/KnPerson": 1}


def test_the_log_line_names_ids_not_addresses(
    sandbox: tuple[str, AfasSandbox], redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    url, app = sandbox
    contact = person_contacts(app)[0]
    with caplog.at_level(logging.INFO, logger="connector.workers.actors_afas"):
        apply(change_for(contact, {"email": EMAIL}), deps_for(url, redis_client))

    [line] = [r.getMessage() for r in caplog.records if r.name == "connector.workers.actors_afas"]
    assert f"contact {contact['ContactId']} (person {contact['PersonNo']}" in line
    assert "written=KnContact" in line
    assert "@" not in line


# Spotler-side changes and the entities each one writes.
KINDS: list[tuple[dict[str, Value], tuple[str, ...]]] = [
    ({"permissions.1": False}, ("KnContact",)),
    ({"firstName": "Anne-Fleur", "lastName": "Visser"}, ("KnPerson",)),
    ({"email": EMAIL}, ("KnContact",)),
    ({"lastName": "Visser", "permissions.1": False}, ("KnContact", "KnPerson")),
    ({"customerType": "Partner"}, ("KnOrganisation",)),
    (
        {"email": EMAIL, "firstName": "Anne-Fleur", "customerType": "Partner"},
        ("KnContact", "KnPerson", "KnOrganisation"),
    ),
]
COLUMN = {
    "email": "Email",
    "firstName": "FirstName",
    "lastName": "LastName",
    "customerType": "CustomerType",
    "permissions.1": "Newsletter",
}


def mixed_changes(app: AfasSandbox, count: int) -> list[tuple[AfasChange, tuple[str, ...]]]:
    """``count`` changes over distinct persons; an organisation's field changes once at most."""
    changes = []
    orgs: set[str] = set()
    kinds = itertools.cycle(KINDS)
    for contact in person_contacts(app):
        values, entities = next(kinds)
        if "KnOrganisation" in entities:
            if contact["OrganisationId"] in orgs:
                values, entities = KINDS[0]
            orgs.add(contact["OrganisationId"])
        changes.append((change_for(contact, values), entities))
        if len(changes) == count:
            return changes
    raise AssertionError(f"the sandbox has fewer than {count} usable contacts")


@pytest.fixture
def worker_env(sandbox: tuple[str, AfasSandbox], redis_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AFAS_", "SPOTLER_"))}
    env.update(
        REDIS_URL=redis_url,
        CONNECTOR_DATA_DIR=str(tmp_path),
        AFAS_BASE_URL=f"{sandbox[0]}/ProfitRestServices",
        AFAS_TOKEN=DEFAULT_TOKEN,
        AFAS_MAX_PARALLEL=str(CAP),
        SPOTLER_BASE_URL="http://127.0.0.1:9/integrationservice-1.1.0",
        SPOTLER_KEY="unused",
        SPOTLER_SECRET="unused",
        PYTHONUNBUFFERED="1",
    )
    return env


def test_two_worker_processes_never_exceed_the_afas_cap(
    sandbox: tuple[str, AfasSandbox], redis_client: redis.Redis, worker_env: dict[str, str], tmp_path: Path
) -> None:
    url, app = sandbox
    control = httpx.Client(base_url=f"{url}/_sandbox", timeout=10)
    control.put("/faults", json={"latency_ms": 100}).raise_for_status()
    changes = mixed_changes(app, 60)
    for change, _ in changes:
        send(apply_afas_change, change)

    workers = [
        ManagedProcess(
            f"afas-worker-{n}", connector_command("work", "--queue", "afas", "--threads", "8"), worker_env, tmp_path
        )
        for n in range(WORKER_PROCESSES)
    ]
    try:

        def finished() -> bool:
            for worker in workers:
                if not worker.alive():
                    raise AssertionError(f"{worker.name} exited:\n{worker.output()[-3000:]}")
            written = int(redis_client.hget(COUNTERS, "afas_changes_written") or 0)
            return written == len(changes) and outstanding(redis_client, AFAS_QUEUE) == 0

        wait_until(finished, timeout_s=180, interval_s=0.2)
    finally:
        for worker in workers:
            worker.stop(timeout_s=30)

    stats = control.get("/requests").json()
    assert stats["max_in_flight"] <= CAP
    expected: dict[str, int] = {}
    for _, entities in changes:
        for entity in entities:
            expected[f"PUT /connectors/{entity}"] = expected.get(f"PUT /connectors/{entity}", 0) + 1
    assert stats["routes"] == expected
    assert DeadLetterStore(redis_client).count() == 0
    for change, _ in changes:
        view = control.get(f"/contacts/{change.contact_id}").json()
        assert {name: view[COLUMN[name]] for name in change.changes} == change.changes, change.contact_id
    control.close()
