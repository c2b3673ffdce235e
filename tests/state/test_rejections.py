"""Rejections: recorded once per contact and field, resolved when the contact syncs, old ones indexed."""

from __future__ import annotations

import json

import redis

from connector.state import keys
from connector.state.rejections import RejectionStore
from connector.sync.rows import Rejection


def rejected(contact: str, field: str, source: str = "afas") -> Rejection:
    return Rejection(contact_id=contact, field=field, reason="no e-mail address", source=source)


def test_resolving_clears_only_the_contacts_that_had_a_rejection(redis_client: redis.Redis) -> None:
    store = RejectionStore(redis_client)
    store.add_many([rejected("1", "Email"), rejected("2", "Newsletter"), rejected("3", "Email", source="spotler")])
    store.resolve("afas", [str(n) for n in range(1, 10_000)], ["Email", "Newsletter"])
    assert [(r.source, r.contact_id) for r in store.list()] == [("spotler", "3")]


def test_rejections_stored_before_the_index_existed_are_resolved_too(redis_client: redis.Redis) -> None:
    member = "afas:42:Email"
    record = {"contact_id": "42", "field": "Email", "reason": "no e-mail address", "source": "afas",
              "first_seen": 1.0, "last_seen": 1.0}
    redis_client.hset(keys.REJECTIONS, member, json.dumps(record))
    redis_client.zadd(keys.REJECTIONS_BY_TIME, {member: 9e9})
    store = RejectionStore(redis_client)
    assert store.count() == 1
    store.resolve("afas", ["42"], ["Email"])
    assert store.count() == 0
