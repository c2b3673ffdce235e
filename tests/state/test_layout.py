"""The packed layout of the agreed state, against real Redis: what goes in comes out, in every form."""

from __future__ import annotations

import msgspec
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.schemas.events import FieldWrite
from connector.state import keys
from connector.state.agreed import AgreedStore, ContactState, FieldState, Pending
from connector.state.migrate import migrate
from connector.state.ordering import CommitItem, ContactWrite, Ordering

CID = "4711"
# cjson (inside Redis) writes numbers with 14 significant digits, as the JSON form always did:
# epoch ms stamps have 13 until the year 2286.
stamps = st.integers(min_value=0, max_value=10**13 - 1)
values = st.one_of(st.none(), st.booleans(), st.text(max_size=80))
names = st.text(min_size=1, max_size=20)
field_states = st.builds(FieldState, values, stamps, st.sampled_from(["", "s", "a", "b"]), st.sampled_from([0, 1]))
pendings = st.builds(Pending, values, stamps, st.integers(min_value=0, max_value=4 * 10**9))


@st.composite
def contact_states(draw: st.DrawFn) -> ContactState:
    """Any state; pending changes often repeat their field's agreed value and stamp (a stage after the commit)."""
    f = draw(st.dictionaries(names, field_states, max_size=12))
    ats = draw(st.lists(st.integers(min_value=0, max_value=4 * 10**9), min_size=1, max_size=3))

    def side() -> dict[str, Pending]:
        table = draw(st.dictionaries(names, pendings, max_size=4))
        for name in draw(st.lists(st.sampled_from(sorted(f)), max_size=len(f))) if f else []:
            table[name] = Pending(f[name].value, f[name].stamp, draw(st.sampled_from(ats)))
        return table

    return ContactState(f=f, ps=side(), pa=side(), p=draw(st.none() | st.text(min_size=1, max_size=10)),
                        o=draw(st.none() | st.text(min_size=1, max_size=10)),
                        ws=draw(stamps), wa=draw(stamps), st=draw(stamps))


ids = st.sampled_from(["0", "7", "4711", "123456789", "00042", "abc", "-5", "x" * 70])


def stored_keys(client: redis.Redis) -> set[str]:
    return {keys.as_bytes(k).decode() for k in client.scan_iter(match="connector:*")}


def old_json(state: ContactState) -> bytes:
    """A state as the earlier version stored it (``connector:agreed:<id>``)."""
    return msgspec.json.encode(state)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=contact_states(), cid=ids)
def test_any_state_in_the_old_form_reads_the_same_before_and_after_it_is_packed(
    redis_client: redis.Redis, state: ContactState, cid: str,
) -> None:
    redis_client.flushdb()
    redis_client.set(keys.agreed(cid), old_json(state))
    store = AgreedStore(redis_client)
    assert store.state(cid) == state
    report = migrate(redis_client)
    assert (report.migrated, report.left) == (1, 0)
    assert redis_client.exists(keys.agreed(cid)) == 0
    assert store.state(cid) == state
    assert list(store.ids()) == [cid]
    assert store.erase([cid]) == 1
    assert stored_keys(redis_client) <= {keys.FIELDS}
    assert store.state(cid) is None


def test_every_kind_of_field_survives_the_scripts_that_write_it(redis_client: redis.Redis) -> None:
    ordering, store = Ordering(redis_client), AgreedStore(redis_client)

    def commit(into: str, *fields: FieldWrite, person: str | None = None) -> None:
        lease = ordering.check(into, [w := ContactWrite(contact_id=CID, fields=list(fields), person=person,  # type: ignore[arg-type]
                                                        organisation="O1")], lease_s=10)
        assert lease.verdicts[0].fresh == [f.name for f in fields]
        ordering.commit(into, lease.token, [CommitItem(write=w)])  # type: ignore[arg-type]

    commit("spotler", FieldWrite("email", "a@voorbeeld.nl", 1000, 0), FieldWrite("infix", None, 1000, 0),
           FieldWrite("permissions.1", True, 1200, 0), FieldWrite("permissions.2", False, 1000, 0), person="P1")
    commit("afas", FieldWrite("lastName", "É" * 70, 3000, 0))  # longer than one chunk
    before = store.state(CID)
    assert before is not None
    # Decided on a base the state has since moved past, written over Spotler's value: owed to Spotler.
    commit("afas", FieldWrite("email", "b@voorbeeld.nl", 5000, 0))
    ordering.stage("spotler", [ContactWrite(contact_id=CID, fields=[FieldWrite("city", "Breda", 6000),
                                                                     FieldWrite("sector", None, 6000)])])
    ordering.stage("afas", [ContactWrite(contact_id=CID, fields=[FieldWrite("permissions.1", False, 7000)])])
    ordering.touch([(CID, 8000)])

    state = store.state(CID)
    assert state is not None
    assert state.f["email"] == FieldState("b@voorbeeld.nl", 5000, "a", 1)
    assert state.f["infix"] == FieldState(None, 1000, "s", 0)
    assert state.f["permissions.1"] == FieldState(True, 1200, "s", 0)
    assert state.f["permissions.2"] == FieldState(False, 1000, "s", 0)
    assert state.f["lastName"] == FieldState("É" * 70, 3000, "a", 0)
    assert {n: (p.value, p.stamp) for n, p in state.ps.items()} == {"city": ("Breda", 6000), "sector": (None, 6000)}
    assert {n: (p.value, p.stamp) for n, p in state.pa.items()} == {"permissions.1": (False, 7000)}
    assert all(p.at > 0 for p in [*state.ps.values(), *state.pa.values()])
    assert (state.p, state.o, state.st) == ("P1", "O1", 8000)
    assert state.ws > 0
    assert state.wa >= state.ws
    assert [o.name for o in ordering.check("afas", [ContactWrite(contact_id=CID, fields=[])],
                                           lease_s=1).verdicts[0].owed] == ["email"]


def test_a_state_shrinks_without_leftovers_and_a_bucket_stays_compact(redis_client: redis.Redis) -> None:
    ordering = Ordering(redis_client)
    contacts = [str(n) for n in range(32)]  # one record bucket, two pending buckets
    ordering.stage("spotler", [ContactWrite(contact_id=c, fields=[FieldWrite(f"f{i}", f"waarde {i} " * 3, 1000)
                                                                  for i in range(8)]) for c in contacts])
    assert redis_client.exists(keys.pending("0"), keys.pending("31")) == 2
    ordering.settle([ContactWrite(contact_id=c, fields=[FieldWrite(f"f{i}", f"waarde{i}", 1000, 0) for i in range(8)],
                                  person="100001", organisation="100002") for c in contacts])
    # Settling cleared every pending change: the pending buckets are gone, the records are short.
    assert redis_client.exists(keys.pending("0"), keys.pending("31")) == 0
    assert redis_client.hlen(keys.states("0")) == 32 * 2  # each record in two chunks of at most 63 bytes
    assert max(len(v) for v in redis_client.hvals(keys.states("0"))) <= 63
    assert redis_client.object("encoding", keys.states("0")) in (b"listpack", b"ziplist")
    assert AgreedStore(redis_client).get("5") == {f"f{i}": f"waarde{i}" for i in range(8)}


def test_a_state_from_before_stamps_is_packed_with_stamp_zero(redis_client: redis.Redis) -> None:
    redis_client.set(keys.agreed(CID), msgspec.msgpack.encode(
        {"email": "a@voorbeeld.nl", "permissions.1": True, "_person": "P1", "_organisation": "O1"}))
    expected = ContactState(f={"email": FieldState("a@voorbeeld.nl"), "permissions.1": FieldState(True)},
                            p="P1", o="O1")
    store = AgreedStore(redis_client)
    assert store.state(CID) == expected
    assert migrate(redis_client).migrated == 1
    assert store.state(CID) == expected


def test_both_forms_at_once_keep_the_newer_stamp_of_each_field(redis_client: redis.Redis) -> None:
    """An earlier version's process wrote the old form after this one packed the contact."""
    ordering, store = Ordering(redis_client), AgreedStore(redis_client)
    ordering.settle([ContactWrite(contact_id=CID, fields=[FieldWrite("city", "Breda", 2000, 0),
                                                          FieldWrite("lastName", "Nieuw", 5000, 0)])])
    redis_client.set(keys.agreed(CID), old_json(ContactState(
        f={"city": FieldState("Zwolle", 3000, "s"), "lastName": FieldState("Oud", 4000, "s"),
           "email": FieldState("a@voorbeeld.nl", 1000, "s")},
        pa={"permissions.1": Pending(False, 3500, 10)}, p="P1", ws=99)))
    state = store.state(CID)
    assert state is not None
    assert state.values == {"city": "Zwolle", "lastName": "Nieuw", "email": "a@voorbeeld.nl"}
    assert (state.stamp("city"), state.stamp("lastName"), state.p, state.ws) == (3000, 5000, "P1", 99)
    assert migrate(redis_client).migrated == 1
    assert store.state(CID) == state
    # The next write of the contact would have done the same: a stale one is still refused.
    assert ordering.check("spotler", [ContactWrite(contact_id=CID, fields=[FieldWrite("lastName", "Oud", 4000, 0)])],
                          lease_s=1).verdicts[0].superseded == ["lastName"]


def test_migrate_packs_every_old_key_and_a_second_run_does_nothing(redis_client: redis.Redis) -> None:
    old = {str(n): ContactState(f={"email": FieldState(f"p{n}@voorbeeld.nl", 1000 + n, "s")}, p=f"P{n}")
           for n in range(1, 1201)}
    for cid, state in old.items():
        redis_client.set(keys.agreed(cid), old_json(state))
    redis_client.set(keys.agreed("9999"), msgspec.msgpack.encode({"email": "oud@voorbeeld.nl"}))
    redis_client.set(keys.agreed("8888"), old_json(old["1"]))
    redis_client.zadd(keys.FORGOTTEN, {"8888": 1.0})  # forgotten: deleted, not migrated

    rewritten: list[str] = []

    def meanwhile(migrated: int) -> None:
        """An earlier version's worker writes old keys while the migration runs: one already packed, one new."""
        if not rewritten:
            cid = next(c for c in old if not redis_client.exists(keys.agreed(c)))
            rewritten.append(cid)
            redis_client.set(keys.agreed(cid), old_json(ContactState(
                f={"email": FieldState("nieuw@voorbeeld.nl", 5000, "s")}, p=f"P{cid}")))
            redis_client.set(keys.agreed("20000"), old_json(old["2"]))

    report = migrate(redis_client, progress=meanwhile)
    assert (report.migrated, report.forgotten, report.left, report.passes) == (1201 + 2, 1, 0, 2)
    assert not list(redis_client.scan_iter(match=keys.agreed("*")))
    store = AgreedStore(redis_client)
    states = dict(zip(old, store.states(list(old)), strict=True))
    [cid] = rewritten
    assert states[cid] == ContactState(f={"email": FieldState("nieuw@voorbeeld.nl", 5000, "s")}, p=f"P{cid}")
    assert all(states[c] == state for c, state in old.items() if c != cid)
    assert store.get("9999") == {"email": "oud@voorbeeld.nl"}
    assert store.state("20000") == old["2"]
    assert store.state("8888") is None
    assert sorted(store.contact_ids(), key=int) == sorted([*old, "9999", "20000"], key=int)

    again = migrate(redis_client)
    assert (again.migrated, again.passes, again.left) == (0, 0, 0)
    assert dict(zip(old, store.states(list(old)), strict=True)) == states


def test_a_contact_packed_by_a_write_leaves_a_marker_an_earlier_version_cannot_read(redis_client: redis.Redis) -> None:
    """A process of the earlier version still running fails on the contact instead of seeing no state."""
    redis_client.set(keys.agreed(CID), old_json(ContactState(f={"city": FieldState("Breda", 1000, "s")})))
    Ordering(redis_client).stage("afas", [ContactWrite(contact_id=CID, fields=[FieldWrite("city", "Zwolle", 2000)])])
    marker = redis_client.get(keys.agreed(CID))
    assert marker is not None
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(marker)  # the earlier version's Python reader
    with pytest.raises(redis.ResponseError):  # ... and its scripts' ``load``
        redis_client.eval("return cjson.decode(redis.call('GET', KEYS[1]))", 1, keys.agreed(CID))
    state = AgreedStore(redis_client).state(CID)
    assert state is not None
    assert (state.values, state.pa["city"].value) == ({"city": "Breda"}, "Zwolle")
    report = migrate(redis_client)
    assert (report.migrated, report.retired, report.left) == (0, 1, 0)
    assert redis_client.exists(keys.agreed(CID)) == 0
    assert AgreedStore(redis_client).state(CID) == state


@pytest.mark.parametrize("cid", ["4711", "abc"])
def test_forget_erases_every_form(redis_client: redis.Redis, cid: str) -> None:
    from connector.state.forget import erase

    Ordering(redis_client).stage("spotler", [ContactWrite(contact_id=cid, fields=[FieldWrite("city", "B" * 200, 1)])])
    redis_client.set(keys.agreed(cid), b'{"f":{}}')
    assert erase(redis_client, [cid]).agreed_state == 1
    assert stored_keys(redis_client) == {keys.FIELDS, keys.FORGOTTEN}
