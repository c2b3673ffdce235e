"""Nothing is lost: faults on either side while changes are under way, and racing workers.

Each test ends on exact states of both systems (AFAS's rows, mapped, against
Spotler's contacts) and of the link's own records. The shared pieces (the
stack fixture, picking contacts, reading both sides) are imported by the
other ``test_nothing_lost_*`` modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.e2e.helpers import MAPPING, spotler_contacts, spotler_values, wait_for_quiet

from connector.sandbox.afas.catalogue import EMAIL_BOUNCED
from connector.schemas.events import Value
from connector.schemas.mapping import Mapping
from connector.stack import Stack, wait_until
from connector.state.agreed import AgreedStore
from connector.state.queues import outstanding
from connector.state.runs import RunHistory
from connector.sync.rows import ContactRecord
from connector.workers.dead_letters import DeadLetterStore

pytestmark = pytest.mark.e2e

BOTH = ("afas", "spotler")
GETCONNECTOR = "GET /connectors/Spotler_Contacts"


@pytest.fixture
def make_stack(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Callable[..., Stack]]:
    """Stacks with both sandboxes up and nothing else running yet; all closed at the end."""
    stacks: list[Stack] = []

    def build(contacts: int, seed: int, **env: str) -> Stack:
        stack = Stack(tmp_path / f"s{len(stacks)}", redis_url=redis_url, contacts=contacts, seed=seed,
                      env={"POLL_INTERVAL_S": "2", **env})
        stacks.append(stack)
        stack.start_sandboxes()
        return stack

    yield build
    for stack in stacks:
        stack.close()


def start_link(stack: Stack, *, workers: int = 1, threads: int = 4, sources: Iterable[str] = BOTH) -> None:
    """``workers`` worker processes per queue, and the producers of ``sources``."""
    for queue in BOTH:
        for n in range(workers):
            stack.start(f"{queue}-worker-{n + 1}", "work", "--queue", queue, "--threads", str(threads))
    for source in sources:
        stack.start(f"{source}-producer", "produce", source)


def settle(stack: Stack, client: redis.Redis, *, cycles: int = 3, sources: tuple[str, ...] = BOTH,
           timeout_s: float = 300) -> None:
    for _ in range(cycles):
        wait_for_quiet(stack, client, sources=sources, timeout_s=timeout_s)


def afas_row(stack: Stack, cid: str) -> dict[str, Any]:
    """A contact as the AFAS control API shows it: its GetConnector row, plus ``fields`` (every field code)."""
    row: dict[str, Any] = stack.afas("GET", f"contacts/{cid}")
    return row


def afas_edit(stack: Stack, entity: str, key: str, **fields: Any) -> None:
    stack.afas("POST", "edit", json={"entity": entity, "id": key, "fields": fields})


def plain(valid: dict[str, ContactRecord]) -> list[str]:
    """Valid, unblocked contacts whose person is no other contact's (a person edit shows in one row only)."""
    persons: dict[str, int] = {}
    for record in valid.values():
        persons[record.person_id] = persons.get(record.person_id, 0) + 1
    return sorted((cid for cid, r in valid.items() if not r.blocked and persons[r.person_id] == 1), key=int)


def mapped(valid: dict[str, ContactRecord]) -> dict[str, dict[str, Value]]:
    return {cid: record.values for cid, record in valid.items()}


def expectation(stack: Stack, mapping: Mapping = MAPPING) -> dict[str, ContactRecord]:
    """AFAS's valid rows, decoded with ``mapping`` the way the producer decodes them."""
    valid: dict[str, ContactRecord] = stack.afas_records(mapping)[0]
    return valid


def spotler_now(stack: Stack) -> dict[str, dict[str, Value]]:
    """Every Spotler contact's values in the mapping's names."""
    return {cid: spotler_values(c) for cid, c in spotler_contacts(stack).items()}


def assert_in_agreement(
    stack: Stack, expected: dict[str, dict[str, Value]] | None = None, *, mapping: Mapping = MAPPING,
) -> dict[str, ContactRecord]:
    """Spotler holds exactly AFAS's valid contacts with their mapped values (and those are ``expected``)."""
    valid = expectation(stack, mapping)
    in_spotler = spotler_now(stack)
    if expected is not None:
        assert mapped(valid) == expected
    assert set(in_spotler) == set(valid)
    assert {cid: v for cid, v in in_spotler.items() if v != valid[cid].values} == {}
    return valid


def agreed(client: redis.Redis, cid: str) -> dict[str, Value]:
    """The agreed state's values; a field never agreed reads as None, so None-valued fields are left out."""
    return {name: value for name, value in (AgreedStore(client).get(cid) or {}).items() if value is not None}


def known(values: dict[str, Value]) -> dict[str, Value]:
    return {name: value for name, value in values.items() if value is not None}


def dead_letters(client: redis.Redis) -> int:
    return DeadLetterStore(client).count()


def counter(client: redis.Redis, name: str) -> int:
    return int(client.hget("connector:counters", name) or 0)


def request_log(stack: Stack, side: str, since: float = 0.0) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = (stack.afas if side == "afas" else stack.spotler)(
        "GET", "requests/log", params={"since": since})
    return log


def cli_json(stack: Stack, *args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "connector", *args, "--json"], env=stack.env(),
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def rejections(stack: Stack) -> set[tuple[str, str | None, str, str]]:
    """``connector rejects --json``: (source, contact, field, reason) of every rejected record."""
    return {(r["source"], r["contact_id"], r["field"], r["reason"]) for r in cli_json(stack, "rejects", "--limit", "0")}


def definition(stack: Stack) -> dict[str, Any]:
    """The sandbox GetConnector's definition (columns, contact types), as its control API gives it."""
    found: dict[str, Any] = stack.afas("GET", "getconnector/Spotler_Contacts")["definition"]
    return found


def define(stack: Stack, defn: dict[str, Any]) -> None:
    stack.afas("PUT", "getconnector/Spotler_Contacts", json=defn)


def runs_json(stack: Stack) -> list[dict[str, Any]]:
    """``connector runs --json``: the poll history with what the workers made of each run."""
    runs: list[dict[str, Any]] = cli_json(stack, "runs", "--limit", "1000")
    return runs


def test_afas_maintenance_while_unsubscribes_and_hard_bounces_arrive(
    make_stack: Callable[..., Stack], redis_client: redis.Redis
) -> None:
    stack = make_stack(600, seed=21)
    start_link(stack)
    settle(stack, redis_client, cycles=2)
    valid = assert_in_agreement(stack)
    candidates = plain(valid)
    bounced_before = {cid for cid in valid if afas_row(stack, cid)["fields"].get(EMAIL_BOUNCED)}
    unsubscribe = [cid for cid in candidates if valid[cid].values["permissions.1"] is True][:10]
    bounce = [cid for cid in candidates if cid not in unsubscribe and cid not in bounced_before][:5]
    assert (len(unsubscribe), len(bounce)) == (10, 5)

    stack.afas("PUT", "faults", json={"maintenance": True, "maintenance_retry_after_s": 5})
    down = time.time()
    for cid in unsubscribe:
        stack.spotler("POST", "unsubscribe", json={"externalId": cid, "bit": 1})
    for cid in bounce:
        stack.spotler("POST", "bounce", json={"externalId": cid, "type": "HARDBOUNCE"})

    def failed_reads() -> int:
        return sum(1 for r in request_log(stack, "afas", down) if r["route"] == GETCONNECTOR and r["status"] == 503)

    # About 30 s of maintenance: every poll of both producers in that time fails.
    wait_until(lambda: time.time() - down >= 30 and failed_reads() >= 8, timeout_s=240, interval_s=1)
    assert all(p.alive() for p in stack.processes.values())
    stack.afas("PUT", "faults", json={})
    settle(stack, redis_client)

    # Every unsubscribe reached AFAS's yes/no field, every hard bounce the mapping's [bounce] field,
    # and nothing else changed: the bounces were not turned into opt-outs.
    for cid in unsubscribe:
        assert afas_row(stack, cid)["Newsletter"] is False
    assert {cid for cid in valid if afas_row(stack, cid)["fields"].get(EMAIL_BOUNCED)} == bounced_before | set(bounce)
    expected = {cid: {**v, "permissions.1": False} if cid in unsubscribe else v for cid, v in mapped(valid).items()}
    assert_in_agreement(stack, expected)
    assert dead_letters(redis_client) == 0


def test_an_older_change_retried_after_a_newer_one_is_superseded(
    make_stack: Callable[..., Stack], redis_client: redis.Redis
) -> None:
    stack = make_stack(300, seed=23)
    start_link(stack)
    settle(stack, redis_client, cycles=2)
    valid = assert_in_agreement(stack)
    cid = plain(valid)[0]
    person = valid[cid].person_id
    history = RunHistory(redis_client)

    # The first change is enqueued while no Spotler worker runs; when one starts, Spotler answers 503
    # (Retry-After 60 s), so the first write is retried a minute later.
    stack.processes["spotler-worker-1"].stop()
    seen = {r.run_id for r in history.latest("afas", 1000)}
    afas_edit(stack, "person", person, FiNm="Eerste")
    first = wait_until(lambda: next((r for r in history.latest("afas", 1000)
                                     if r.run_id not in seen and r.changed == 1), None), timeout_s=120)
    stack.spotler("PUT", "faults", json={"error_rate": 1.0, "error_status": 503, "maintenance_retry_after_s": 60})
    failing = time.time()
    stack.start("spotler-worker-1", "work", "--queue", "spotler", "--threads", "4")
    wait_until(lambda: any(r["status"] == 503 for r in request_log(stack, "spotler", failing))
               and redis_client.hlen("dramatiq:spotler.DQ.msgs") == 1, timeout_s=120)

    # Spotler is back; the name changes again and the newer change is written first.
    stack.spotler("PUT", "faults", json={})
    afas_edit(stack, "person", person, FiNm="Tweede")
    wait_until(lambda: stack.spotler("GET", f"contacts/{cid}")["properties"].get("firstName") == "Tweede",
               timeout_s=120)
    assert redis_client.hlen("dramatiq:spotler.DQ.msgs") == 1, "the older change's retry was still waiting"
    wait_until(lambda: outstanding(redis_client, "spotler") == 0, timeout_s=240)
    settle(stack, redis_client)

    assert afas_row(stack, cid)["FirstName"] == "Tweede"
    assert stack.spotler("GET", f"contacts/{cid}")["properties"]["firstName"] == "Tweede"
    assert agreed(redis_client, cid) == known({**valid[cid].values, "firstName": "Tweede"})
    assert counter(redis_client, "spotler_superseded") == 1
    by_id = {r["run_id"]: r for r in runs_json(stack)}
    assert (by_id[first.run_id]["written"], by_id[first.run_id]["superseded"]) == (0, 1)
    assert_in_agreement(stack, {**mapped(valid), cid: {**valid[cid].values, "firstName": "Tweede"}})
    assert dead_letters(redis_client) == 0


@pytest.mark.timeout(420)
def test_workers_racing_on_one_contact_end_with_every_last_value(
    make_stack: Callable[..., Stack], redis_client: redis.Redis
) -> None:
    stack = make_stack(300, seed=24, POLL_INTERVAL_S="0.5")
    start_link(stack, workers=3, threads=2)
    settle(stack, redis_client, cycles=2)
    valid = assert_in_agreement(stack)
    cid = plain(valid)[1]
    person = valid[cid].person_id

    # Spotler edits the last name, AFAS the first name of the same contact, round after round. Spotler's
    # feed shows an edit once it is 2 s old, so each AFAS edit follows about then: both producers pick
    # up their side's change in the same poll. Every call takes a while and a fifth of them fail (503,
    # retry after 1 s), so changes from both sides, and older and newer ones of one side, are in flight
    # together on several worker processes, and finish in any order.
    for seed, side in enumerate((stack.afas, stack.spotler)):
        side("PUT", "faults", json={"latency_ms": 150, "error_rate": 0.2, "error_status": 503,
                                    "maintenance_retry_after_s": 1, "seed": seed})
    rounds = 10
    for n in range(rounds):
        stack.spotler("POST", "edit", json={"externalId": cid, "properties": {"lastName": f"Achternaam{n}"}})
        time.sleep(1.8 + 0.2 * (n % 3))  # the edits' rhythm (scenario, not synchronisation)
        afas_edit(stack, "person", person, FiNm=f"Voornaam{n}")
        time.sleep(0.3 * (n % 2))
    for side in (stack.afas, stack.spotler):
        side("PUT", "faults", json={})
    settle(stack, redis_client, cycles=4)

    last = {**valid[cid].values, "firstName": f"Voornaam{rounds - 1}", "lastName": f"Achternaam{rounds - 1}"}
    row = afas_row(stack, cid)
    assert (row["FirstName"], row["LastName"]) == (last["firstName"], last["lastName"])
    assert spotler_values(stack.spotler("GET", f"contacts/{cid}")) == last
    assert agreed(redis_client, cid) == known(last)
    assert_in_agreement(stack, {**mapped(valid), cid: last})
    assert dead_letters(redis_client) == 0
