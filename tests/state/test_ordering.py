"""The newer-wins check and commit, against real Redis: every rule of ``connector.state.ordering``."""

from __future__ import annotations

import threading
import time

import msgspec
import redis

from connector.schemas.events import FieldWrite, Value
from connector.state import keys
from connector.state.agreed import AgreedStore
from connector.state.ordering import CommitItem, ContactWrite, Ordering

CID = "4711"


def write(*fields: tuple[str, Value, int, int], cid: str = CID) -> ContactWrite:
    return ContactWrite(contact_id=cid, fields=[FieldWrite(n, v, stamp, base) for n, v, stamp, base in fields])


def apply(ordering: Ordering, into: str, w: ContactWrite) -> list[str]:
    """What a writer does: check, write the fresh fields (here: nothing to call), commit them."""
    lease = ordering.check(into, [w], lease_s=10)  # type: ignore[arg-type]
    [verdict] = lease.verdicts
    assert not verdict.busy
    fresh = [f for f in w.fields if f.name in verdict.fresh]
    dropped = [f for f in w.fields if f.name not in verdict.fresh]
    ordering.commit(into, lease.token, [CommitItem(write=msgspec.structs.replace(w, fields=fresh),  # type: ignore[arg-type]
                                                   dropped=dropped)])
    return verdict.fresh


def agreed(client: redis.Redis) -> dict[str, Value] | None:
    return AgreedStore(client).get(CID)


def test_an_older_change_after_a_newer_one_is_superseded(redis_client: redis.Redis) -> None:
    ordering = Ordering(redis_client)
    assert apply(ordering, "spotler", write(("lastName", "Nieuw", 2000, 0))) == ["lastName"]
    assert apply(ordering, "spotler", write(("lastName", "Oud", 1000, 0))) == []
    assert agreed(redis_client) == {"lastName": "Nieuw"}


def test_a_redelivery_is_superseded_and_a_recomputed_change_is_not(redis_client: redis.Redis) -> None:
    ordering = Ordering(redis_client)
    first = write(("email", "a@example.org", 1000, 0))
    assert apply(ordering, "spotler", first) == ["email"]
    assert apply(ordering, "spotler", first) == []  # the same message again
    state = AgreedStore(redis_client).state(CID)
    assert state is not None
    # The same value and stamp decided against the current agreed state: applied, not a duplicate.
    assert apply(ordering, "spotler", write(("email", "a@example.org", 1000, state.stamp("email")))) == ["email"]


def test_a_change_decided_on_the_current_state_wins_even_with_an_older_clock(redis_client: redis.Redis) -> None:
    ordering = Ordering(redis_client)
    apply(ordering, "afas", write(("firstName", "Spotler", 5000, 0)))  # stamped by Spotler's clock
    # AFAS's clock runs behind, but this edit was decided knowing the state above: it is newer.
    assert apply(ordering, "spotler", write(("firstName", "AFAS", 4000, 5000))) == ["firstName"]
    state = AgreedStore(redis_client).state(CID)
    assert state is not None
    assert (state.values["firstName"], state.stamp("firstName")) == ("AFAS", 5001)  # the version moved on


def test_a_newer_edit_on_its_way_out_of_the_target_holds_an_older_write_back(redis_client: redis.Redis) -> None:
    ordering = Ordering(redis_client)
    ordering.stage("afas", [write(("permissions.1", False, 3000, 0))])  # a Spotler opt-out on its way to AFAS
    assert apply(ordering, "spotler", write(("permissions.1", True, 2000, 0))) == []  # older AFAS opt-in
    assert apply(ordering, "spotler", write(("permissions.1", True, 4000, 0))) == ["permissions.1"]  # newer


def test_applying_clears_older_pending_changes_and_superseding_clears_its_own(redis_client: redis.Redis) -> None:
    ordering = Ordering(redis_client)
    ordering.stage("spotler", [write(("city", "Breda", 1000, 0), ("lastName", "X", 1000, 0))])
    apply(ordering, "spotler", write(("city", "Breda", 1000, 0)))
    state = AgreedStore(redis_client).state(CID)
    assert state is not None
    assert set(state.pending("spotler", time.time())) == {"lastName"}
    apply(ordering, "spotler", write(("lastName", "Y", 2000, 0)))
    apply(ordering, "spotler", write(("lastName", "X", 1000, 0)))  # superseded: its pending note goes
    state = AgreedStore(redis_client).state(CID)
    assert state is not None
    assert state.pending("spotler", time.time()) == {}


def test_a_pending_change_older_than_its_max_age_no_longer_holds_anything_back(redis_client: redis.Redis) -> None:
    ordering = Ordering(redis_client, max_age_s=1)
    ordering.stage("afas", [write(("lastName", "Spotler", 9000, 0))])
    assert apply(ordering, "spotler", write(("lastName", "AFAS", 1000, 0))) == []
    time.sleep(2.1)  # the pending note's age is the point of this test
    assert apply(ordering, "spotler", write(("lastName", "AFAS", 1000, 0))) == ["lastName"]


def test_a_contact_leased_by_one_writer_is_busy_for_another(redis_client: redis.Redis) -> None:
    ordering = Ordering(redis_client)
    held = ordering.check("spotler", [write(("email", "a@example.org", 1, 0))], lease_s=30)
    other = ordering.check("afas", [write(("lastName", "B", 1, 0))], lease_s=30)
    assert other.verdicts[0].busy
    assert 0 < (other.verdicts[0].busy_ms or 0) <= 30_000
    ordering.release(held.token, [CID])
    assert not ordering.check("afas", [write(("lastName", "B", 1, 0))], lease_s=30).verdicts[0].busy


def test_the_commit_rechecks_a_field_that_was_overtaken_while_the_lease_had_run_out(
    redis_client: redis.Redis
) -> None:
    ordering = Ordering(redis_client)
    slow = write(("lastName", "Traag", 1000, 0))
    lease = ordering.check("spotler", [slow], lease_s=10)
    redis_client.delete(keys.lease(CID))  # the slow writer's lease expired
    apply(ordering, "spotler", write(("lastName", "Snel", 2000, 0)))
    [applied] = ordering.commit("spotler", lease.token, [CommitItem(write=slow)])
    assert (applied.applied, applied.late) == ([], ["lastName"])
    assert agreed(redis_client) == {"lastName": "Snel"}


def test_a_change_that_overtook_our_write_into_its_own_source_is_owed_back_there(redis_client: redis.Redis) -> None:
    ordering = Ordering(redis_client)
    apply(ordering, "spotler", write(("lastName", "AFAS", 1000, 0)))  # written into Spotler at version 1000
    # A Spotler edit decided before that write (base 0), newer than it: applied into AFAS, and since our
    # write went into Spotler after the edit was made, Spotler may hold our value: owed back to Spotler.
    lease = ordering.check("afas", [w := write(("lastName", "Spotler", 1500, 0))], lease_s=10)
    [applied] = ordering.commit("afas", lease.token, [CommitItem(write=w)])
    assert [(o.name, o.value, o.stamp) for o in applied.owed] == [("lastName", "Spotler", 1500)]
    # A redelivery of the same change reports the debt again (the re-assert may not have been sent).
    again = ordering.check("afas", [w], lease_s=10)
    assert (again.verdicts[0].fresh, [o.name for o in again.verdicts[0].owed]) == ([], ["lastName"])
    ordering.release(again.token, [CID])
    # The re-assert, an ordered write into Spotler decided on the new version, pays it.
    assert apply(ordering, "spotler", write(("lastName", "Spotler", 1500, 1500))) == ["lastName"]
    state = AgreedStore(redis_client).state(CID)
    assert state is not None
    assert state.f["lastName"].owed == 0
    assert ordering.check("afas", [w], lease_s=10).verdicts[0].owed == []


def test_settling_records_what_both_systems_hold_under_the_same_rule(redis_client: redis.Redis) -> None:
    ordering = Ordering(redis_client)
    apply(ordering, "spotler", write(("city", "Breda", 2000, 0)))
    ordering.settle([write(("city", "Zwolle", 1000, 0))])  # older and decided on another base
    assert agreed(redis_client) == {"city": "Breda"}
    ordering.settle([write(("city", "Zwolle", 3000, 2000))])
    assert agreed(redis_client) == {"city": "Zwolle"}


def test_a_state_from_before_stamps_is_read_and_carried_on(redis_client: redis.Redis) -> None:
    redis_client.set(keys.agreed(CID), msgspec.msgpack.encode(
        {"email": "a@example.org", "permissions.1": True, "_person": "P1", "_organisation": "O1"}))
    assert agreed(redis_client) == {"email": "a@example.org", "permissions.1": True}
    ordering = Ordering(redis_client)
    assert apply(ordering, "spotler", write(("permissions.1", False, 1000, 0))) == ["permissions.1"]
    state = AgreedStore(redis_client).state(CID)
    assert state is not None
    assert (state.values, state.p, state.o) == ({"email": "a@example.org", "permissions.1": False}, "P1", "O1")


def test_two_workers_racing_on_one_contact_lose_no_update(redis_client: redis.Redis) -> None:
    """Threads write different fields of one contact, each many times: every last value survives."""
    ordering = Ordering(redis_client)
    rounds = 40
    errors: list[BaseException] = []

    def worker(name: str, into: str) -> None:
        try:
            for n in range(1, rounds + 1):
                while True:
                    lease = ordering.check(into, [w := write((name, f"{name}-{n}", n, -1))], lease_s=10)  # type: ignore[arg-type]
                    if not lease.verdicts[0].busy:
                        break
                ordering.commit(into, lease.token, [CommitItem(write=w)])  # type: ignore[arg-type]
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"f{i}", "spotler" if i % 2 else "afas")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert agreed(redis_client) == {f"f{i}": f"f{i}-{rounds}" for i in range(4)}
