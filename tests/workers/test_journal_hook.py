"""What the workers journal: each write's outcome per contact, failed attempts, nothing for forgotten contacts."""

from __future__ import annotations

import redis

from connector.errors import RetriableError
from connector.schemas.events import AfasChange, ContactChange, SpotlerBatch
from connector.state.journal import Journal, Wrote
from connector.workers import journal_hook
from connector.writers.afas import AfasOutcome
from connector.writers.spotler import BatchOutcome


def steps(client: redis.Redis, cid: str) -> list[object]:
    return [e.step for e in Journal(client).entries(cid)]


def change(cid: str, **fields: object) -> ContactChange:
    return ContactChange(contact_id=cid, changes=dict(fields))  # type: ignore[arg-type]


def test_a_spotler_batch_journals_each_contacts_outcome(redis_client: redis.Redis) -> None:
    outcome = BatchOutcome(written=[change("1", email="x", firstName="y")], superseded=[change("2", lastName="z")],
                           retry=[change("3", city="c")], rejected=[(change("4", email="e"), "ERROR", "invalid")],
                           forgotten=[change("5", email="f")])
    journal_hook.to_spotler(redis_client, SpotlerBatch(changes=[], attempt=1), outcome)
    assert steps(redis_client, "1") == [Wrote(target="spotler", entity="contact/list", fields=["email", "firstName"],
                                              outcome="ok", attempt=2)]
    assert steps(redis_client, "2") == [Wrote(target="spotler", entity="contact/list", fields=["lastName"],
                                              outcome="superseded", attempt=2)]
    assert [s.outcome for s in steps(redis_client, "3")] == ["retry"]  # type: ignore[attr-defined]
    assert steps(redis_client, "4") == [Wrote(target="spotler", entity="contact/list", fields=["email"],
                                              outcome="refused", attempt=2, detail="ERROR invalid")]
    assert steps(redis_client, "5") == []


def test_an_afas_change_journals_the_connectors_and_what_something_newer_held_back(
    redis_client: redis.Redis,
) -> None:
    afas_change = AfasChange(contact_id="7", person_id="P7", organisation_id="O7",
                             changes={"firstName": "a", "lastName": "b"}, reassert=True)
    journal_hook.to_afas(redis_client, afas_change, AfasOutcome(written=["KnPerson"], superseded=["lastName"]))
    assert steps(redis_client, "7") == [
        Wrote(target="afas", entity="KnPerson", fields=["firstName"], outcome="ok", detail="re-assert"),
        Wrote(target="afas", entity="-", fields=["lastName"], outcome="superseded", detail="re-assert"),
    ]
    journal_hook.to_afas(redis_client, AfasChange(contact_id="8", person_id="P", organisation_id="O",
                                                  changes={"firstName": "a"}), AfasOutcome(forgotten=True))
    assert steps(redis_client, "8") == []


def test_a_failed_attempt_is_journalled_for_every_contact_of_the_message(redis_client: redis.Redis) -> None:
    journal_hook.failed(redis_client, "afas", {"contact_id": "9", "changes": {}}, 2, RetriableError("HTTP 503"))
    journal_hook.failed(redis_client, "spotler.DQ", {"changes": [{"contact_id": "10"}, {"contact_id": "11"}]}, 1,
                        TimeoutError())
    journal_hook.failed(redis_client, "afas", None, 1, RetriableError("no payload"))
    assert steps(redis_client, "9") == [Wrote(target="afas", entity="-", fields=[], outcome="failed", attempt=2,
                                              detail="RetriableError")]
    for cid in ("10", "11"):
        assert steps(redis_client, cid) == [Wrote(target="spotler", entity="contact/list", fields=[],
                                                  outcome="failed", attempt=1, detail="TimeoutError")]
