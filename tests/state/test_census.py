"""The census of a Redis names what wiping it would delete, by kind."""

from __future__ import annotations

import redis

from connector.schemas.events import FieldWrite
from connector.state.census import Census, take_census
from connector.state.ordering import ContactWrite, Ordering


def test_the_census_counts_by_kind_and_leaves_other_keys_alone(redis_client: redis.Redis) -> None:
    for n in range(3):
        redis_client.set(f"connector:agreed:{n}", b"{}")
    redis_client.set("connector:cursor:spotler", b"2026-01-01T00:00:00+00:00")
    redis_client.zadd("connector:dlq:by_time", {"d1": 1.0})
    redis_client.hset("connector:dlq:letters", "d1", b"{}")
    redis_client.hset("dramatiq:spotler.msgs", "m1", b"{}")
    redis_client.hset("dramatiq:spotler.XQ.msgs", "m2", b"{}")
    redis_client.zadd("dramatiq:__heartbeats__", {"w1": 1.0})
    redis_client.set("someone-else:key", b"1")
    census = take_census(redis_client)
    assert census == Census(keys=9, agreed_states=3, cursors=1, dead_letters=1, queues=1, other_keys=1)
    assert census.describe() == "holds 3 agreed states, 1 cursor, 1 dead letter, 1 queue, 1 other key"
    assert redis_client.dbsize() == 10  # read only


def test_an_empty_redis_is_empty_and_large_counts_read_with_thousands_separators(redis_client: redis.Redis) -> None:
    redis_client.set("someone-else:key", b"1")
    assert take_census(redis_client).empty
    assert Census(keys=1239, agreed_states=1234, cursors=2, dead_letters=5, queues=3).describe() == (
        "holds 1,234 agreed states, 2 cursors, 5 dead letters, 3 queues"
    )


def test_packed_states_count_per_contact_not_per_key(redis_client: redis.Redis) -> None:
    ordering = Ordering(redis_client)
    ordering.stage("spotler", [ContactWrite(contact_id=cid, fields=[FieldWrite("lastName", "x" * 100, 1)])
                               for cid in ("1", "2", "40", "abc")])
    redis_client.set("connector:agreed:7", b"{}")  # one in the form of an earlier version
    census = take_census(redis_client)
    assert (census.agreed_states, census.other_keys) == (5, 0)
