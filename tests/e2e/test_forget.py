"""``connector forget`` on a running link: the person's data leaves Redis, and nothing brings it back.

The AFAS sandbox never deletes a contact (AFAS cannot through its API), so the
forgotten contact is one AFAS still lists: ``connector forget`` refuses it,
``--force`` forgets it. From then on both producers skip it and the workers
drop its old changes, still queued from before, as *forgotten*.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import dramatiq
import msgspec
import pytest
import redis
from tests.e2e.helpers import redis_text, spotler_values
from tests.e2e.test_nothing_lost import afas_edit, afas_row, counter, make_stack, plain, settle, start_link

from connector.schemas.events import ContactChange, SpotlerBatch
from connector.stack import Stack, wait_until
from connector.state.conflicts import ConflictStore
from connector.state.queues import outstanding
from connector.state.rejections import RejectionStore
from connector.state.runs import RunHistory
from connector.sync.merge import Conflict
from connector.sync.rows import Rejection
from connector.workers.dead_letters import DeadLetterStore, contacts_of, letter_for_message

pytestmark = pytest.mark.e2e

__all__ = ["make_stack"]  # the fixture, shared with the main module


def connector(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector", *args], env=stack.env(),
                          capture_output=True, text=True, timeout=120, check=False)


def letter_naming(client: redis.Redis, *changes: ContactChange) -> None:
    """A dead letter of one Spotler batch, as the workers store one that gave up."""
    message = dramatiq.Message(queue_name="spotler", actor_name="upsert_batch", args=(), options={},
                               kwargs={"payload": msgspec.to_builtins(SpotlerBatch(changes=list(changes)))})
    DeadLetterStore(client).add(letter_for_message(message, reason="exhausted", error=None, attempts=11,
                                                   entity_key=None))


@pytest.mark.timeout(600)
def test_forget_leaves_no_personal_data_in_redis_and_old_changes_write_nothing(
    make_stack: Callable[..., Stack], redis_client: redis.Redis
) -> None:
    stack = make_stack(100, seed=41)
    start_link(stack)
    settle(stack, redis_client, cycles=2)
    valid = stack.afas_records()[0]
    cid, other = plain(valid)[:2]
    person = valid[cid].person_id
    email = f"vergeet.mij.{cid}@voorbeeld.nl"
    afas_edit(stack, "contact", cid, EmAd=email)
    afas_edit(stack, "person", person, FiNm="Wilhelmina", LaNm="Vergeetmenietje")
    settle(stack, redis_client)
    synced = spotler_values(stack.spotler("GET", f"contacts/{cid}"))
    assert (synced["email"], synced["firstName"], synced["lastName"]) == (email, "Wilhelmina", "Vergeetmenietje")
    # Records that name the contact: a rejection, a conflict, and a dead letter it shares with another contact.
    RejectionStore(redis_client).add_many([Rejection(contact_id=cid, field="bounce", source="spotler",
                                                     reason="hard bounce of a contact no longer in AFAS")])
    ConflictStore(redis_client).add_many([Conflict(
        contact_id=cid, field="lastName", afas_value="Vergeetmenietje", spotler_value="Vergeetmijniet-Oud",
        agreed_value=None, rule="owner:newest", winner="afas", value="Vergeetmenietje")])
    letter_naming(redis_client,
                  ContactChange(contact_id=cid, changes={"email": email}, stamps={"email": 1}, bases={"email": 0}),
                  ContactChange(contact_id=other, changes={"firstName": "Blijft"}, stamps={"firstName": 1},
                                bases={"firstName": 0}))

    # Old changes, one each way, queued while no worker runs.
    for queue in ("spotler", "afas"):
        stack.processes[f"{queue}-worker-1"].stop()
    afas_edit(stack, "person", person, FiNm="Wilhelmine")
    stack.spotler("POST", "edit", json={"externalId": cid, "properties": {"lastName": "Vergeetmijniet"}})
    wait_until(lambda: outstanding(redis_client, "spotler") and outstanding(redis_client, "afas"), timeout_s=120)
    personal = [email, "Wilhelmina", "Wilhelmine", "Vergeetmenietje", "Vergeetmijniet"]
    everything = redis_text(redis_client)
    assert [p for p in personal if p.encode() not in everything] == []  # the search does find them

    # The workers kept the contact's consent trail (its permission bits as first written to Spotler).
    trail = connector(stack, "consent", cid, "--json")
    assert trail.returncode == 0, trail.stderr
    assert {(r["kind"], r["source"], r["target"]) for r in json.loads(trail.stdout)} >= {
        ("permission", "afas", "spotler")}

    refused = connector(stack, "forget", cid, "--yes")
    assert refused.returncode == 1
    assert f"AFAS still lists contact(s) {cid}: erase them in AFAS first" in refused.stderr
    done = connector(stack, "forget", cid, "--force", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {k: report[k] for k in ("contacts", "agreed_state", "rejections", "conflicts", "dead_letters")} == {
        "contacts": [cid], "agreed_state": 1, "rejections": 1, "conflicts": 1, "dead_letters": 1}
    assert "voorbeeld.nl" not in done.stdout
    assert report["consent_records"] >= 1
    assert json.loads(connector(stack, "consent", cid, "--json").stdout) == []

    # New edits on both sides after the forget, then the workers take the old changes.
    afas_edit(stack, "person", person, FiNm="Na-Vergeten")
    stack.spotler("POST", "edit", json={"externalId": cid, "properties": {"infix": "van-Vergeten"}})
    for queue in ("spotler", "afas"):
        stack.start(f"{queue}-worker-1", "work", "--queue", queue, "--threads", "4")
    settle(stack, redis_client, cycles=2)

    # Nothing was written either way: Spotler keeps what it had, AFAS too.
    after = spotler_values(stack.spotler("GET", f"contacts/{cid}"))
    assert (after["firstName"], after["lastName"]) == ("Wilhelmina", "Vergeetmijniet")
    row = afas_row(stack, cid)
    assert (row["FirstName"], row["LastName"]) == ("Na-Vergeten", "Vergeetmenietje")
    assert counter(redis_client, "spotler_forgotten") >= 1
    assert counter(redis_client, "afas_forgotten") >= 1
    history = RunHistory(redis_client)
    for source in ("afas", "spotler"):
        assert any(r.forgotten for r in history.latest(source, limit=1000)), source
    # The person's data is nowhere in Redis; the other contact's item of the shared letter is kept.
    everything = redis_text(redis_client)
    assert [p for p in [*personal, "Na-Vergeten", "van-Vergeten"] if p.encode() in everything] == []
    assert [contacts_of(letter) for letter in DeadLetterStore(redis_client).list()] == [[other]]
    assert [p.name for p in stack.processes.values() if not p.alive()] == []
