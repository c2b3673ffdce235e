"""The per-contact journal's store: order, the two bounds, steps read again, field positions, erasure."""

from __future__ import annotations

import pytest
import redis

from connector.state import journal as journal_module
from connector.state.journal import (
    DeadLettered,
    Journal,
    Rejected,
    Replayed,
    Seen,
    Settled,
    Step,
    Wrote,
    describe,
    journal_key,
)
from connector.state.keys import COUNTERS, FIELDS

NOW = 1_800_000_000.0
DAY = 86_400


def test_steps_come_back_in_order_with_their_times_and_field_names(redis_client: redis.Redis) -> None:
    redis_client.rpush(FIELDS, "email", "firstName", "permissions.1")
    journal = Journal(redis_client)
    steps: list[Step] = [
        Seen(source="afas", stamp=1_799_999_999_000, fields=["email", "permissions.1"], decision="to_spotler"),
        Settled(field="firstName", rule="newest", winner="spotler"),
        Wrote(target="spotler", entity="contact/list", fields=["email", "permissions.1"], outcome="ok"),
        Wrote(target="afas", entity="KnPerson", fields=["lastName"], outcome="failed", attempt=2,
              detail="TransientError"),
        DeadLettered(letter_id="0f9c", queue="afas", reason="exhausted"),
        Replayed(letter_id="0f9c"),
        Rejected(source="afas", field="email", reason="invalid e-mail address"),
    ]
    assert journal.append([("7", s) for s in steps[:3]], now=NOW) == 3
    assert journal.append([("7", s) for s in steps[3:]], now=NOW + 5) == 4

    entries = journal.entries("7", now=NOW + 10)
    assert [e.step for e in entries] == steps
    assert [e.at for e in entries] == [int(NOW)] * 3 + [int(NOW) + 5] * 4
    # Known names are stored as positions: "lastName" (not in connector:fields) by itself.
    raw = redis_client.get(journal_key("7"))
    assert raw is not None
    assert b"permissions.1" not in raw
    assert b"lastName" in raw
    # A fresh reader (another process) maps the positions back.
    assert [e.step for e in Journal(redis_client).entries("7", now=NOW + 10)] == steps


def test_the_same_step_read_again_is_not_added_twice(redis_client: redis.Redis) -> None:
    journal = Journal(redis_client)
    seen = Seen(source="spotler", stamp=123, fields=["email"], decision="echo")
    assert journal.append([("1", seen)], now=NOW) == 1
    assert journal.append([("1", seen), ("1", seen)], now=NOW + 30) == 0
    later = Seen(source="spotler", stamp=124, fields=["email"], decision="echo")
    assert journal.append([("1", later)], now=NOW + 60) == 1
    assert [e.step for e in journal.entries("1", now=NOW + 60)] == [seen, later]


def test_at_most_max_entries_are_kept_the_oldest_go_first(redis_client: redis.Redis) -> None:
    journal = Journal(redis_client, max_entries=5)
    for n in range(12):
        journal.append([("1", Seen(source="afas", stamp=n, fields=[], decision="to_spotler"))], now=NOW + n)
    stamps = [e.step.stamp for e in journal.entries("1", now=NOW + 12) if isinstance(e.step, Seen)]
    assert stamps == [7, 8, 9, 10, 11]


def test_steps_older_than_the_retention_are_dropped_and_the_key_expires(redis_client: redis.Redis) -> None:
    journal = Journal(redis_client, retention_s=30 * DAY)
    journal.append([("1", Replayed(letter_id="a"))], now=NOW)
    journal.append([("1", Replayed(letter_id="b"))], now=NOW + 20 * DAY)
    assert [e.step for e in journal.entries("1", now=NOW + 31 * DAY)] == [Replayed(letter_id="b")]
    ttl = redis_client.ttl(journal_key("1"))
    assert 29 * DAY < int(ttl) <= 30 * DAY
    # The next append rewrites the journal without the old step.
    journal.append([("1", Replayed(letter_id="c"))], now=NOW + 31 * DAY)
    assert [e.step for e in Journal(redis_client, retention_s=365 * DAY).entries("1", now=NOW + 31 * DAY)] == [
        Replayed(letter_id="b"), Replayed(letter_id="c")]


def test_a_long_reason_is_cut_not_the_step(redis_client: redis.Redis) -> None:
    journal = Journal(redis_client)
    fields = [f"field{n}" for n in range(60)]
    journal.append([("1", Rejected(source="afas", field="x", reason="r" * 400)),
                    ("1", Wrote(target="afas", entity="KnContact", fields=fields, outcome="ok"))], now=NOW)
    [rejected, wrote] = [e.step for e in journal.entries("1", now=NOW)]
    assert isinstance(rejected, Rejected)
    assert rejected.reason.startswith("r")
    assert len(rejected.reason) < 400
    assert isinstance(wrote, Wrote)
    assert wrote.fields[:10] == fields[:10]
    assert wrote.fields[-1] == "…"
    assert wrote.outcome == "ok"


def test_erase_removes_the_journals(redis_client: redis.Redis) -> None:
    journal = Journal(redis_client)
    journal.append([("1", Replayed(letter_id="a")), ("2", Replayed(letter_id="b"))], now=NOW)
    assert journal.erase(["1", "2", "3"]) == 2
    assert journal.entries("1") == []
    assert redis_client.exists(journal_key("2")) == 0


def test_a_failing_append_is_counted_never_raised(redis_client: redis.Redis) -> None:
    redis_client.set(journal_key("1"), b"\x09")  # a frame with no time: the script errors
    journal = Journal(redis_client)
    assert journal.append([("1", Replayed(letter_id="a"))], now=NOW) == 0
    assert int(redis_client.hget(COUNTERS, "journal_unrecorded") or 0) == 1


def test_max_entries_zero_turns_the_journal_off(redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_MAX_ENTRIES", "0")
    journal_module.process_bounds.cache_clear()
    try:
        assert Journal.for_process(redis_client) is None
        monkeypatch.setenv("JOURNAL_MAX_ENTRIES", "3")
        journal_module.process_bounds.cache_clear()
        on = Journal.for_process(redis_client)
        assert on is not None
        assert on.max_entries == 3
    finally:
        journal_module.process_bounds.cache_clear()


def test_every_step_has_a_line() -> None:
    assert describe(Seen(source="afas", stamp=1, fields=["email"], decision="echo")) == (
        "change seen in AFAS (email): echo of our own write, suppressed")
    assert "Spotler wins" in describe(Settled(field="lastName", rule="newest", winner="spotler"))
    assert "attempt 2: failed: TransientError" in describe(
        Wrote(target="afas", entity="KnPerson", fields=[], outcome="failed", attempt=2, detail="TransientError"))
