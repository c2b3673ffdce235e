"""``connector publish-events``: idles without EVENTS_URL, publishes the outbox with it."""

from __future__ import annotations

from collections.abc import Callable

import redis
from click.testing import CliRunner
from tests.events.conftest import Consumer

from connector.cli.main import cli
from connector.events.outbox import Outbox
from connector.events.schemas import ContactSynced


def test_without_events_url_it_says_so_and_publishes_nothing(redis_client: redis.Redis) -> None:
    Outbox(redis_client).record([ContactSynced(contact_id="1", fields=[])])
    result = CliRunner().invoke(cli, ["publish-events", "--once"], env={"EVENTS_URL": ""})
    assert result.exit_code == 0, result.output
    assert "EVENTS_URL is not set" in result.output
    assert Outbox(redis_client).length() == 1


def test_once_publishes_what_the_outbox_holds(
    redis_client: redis.Redis, redis_bus_url: str, consumer_on: Callable[[str], Consumer],
) -> None:
    consumer = consumer_on(redis_bus_url)
    events = [ContactSynced(contact_id=str(n), fields=["email"]) for n in range(3)]
    Outbox(redis_client).record(events)
    result = CliRunner().invoke(cli, ["publish-events", "--once"], env={"EVENTS_URL": redis_bus_url})
    assert result.exit_code == 0, result.output
    assert Outbox(redis_client).length() == 0
    assert [body["event_id"] for _, body in consumer.receive({e.event_id for e in events})] == [
        e.event_id for e in events]
