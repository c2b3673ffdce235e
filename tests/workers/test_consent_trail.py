"""The consent trail as the actors record it: real sandboxes over HTTP, real Redis, the CLI's export."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
import redis
from click.testing import CliRunner

from connector.cli.consent import COLUMNS, consent
from connector.cli.context import AppContext
from connector.clients.afas import AfasClient
from connector.clients.spotler import SpotlerClient
from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.testing import running_sandbox
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET, create_app
from connector.schemas.events import AfasChange, ContactChange, Value
from connector.schemas.mapping import BounceRule, load_mapping
from connector.settings import Settings
from connector.state.consent import ConsentRecord, ConsentTrail
from connector.state.forget import erase
from connector.state.keys import COUNTERS
from connector.state.ordering import Ordering
from connector.workers import consent_hook
from connector.workers.actors_afas import AfasDeps, apply
from connector.writers.afas import AfasOutcome
from connector.writers.spotler import write_batch

MAPPING = load_mapping(None)
STAMP = int(time.time() * 1000) - 3_600_000  # an hour ago: well inside the retention
YEAR_S = 365 * 86400.0


class Afas(msgspec.Struct):
    client: AfasClient
    http: httpx.Client

    def contact(self, cd_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.http.get(f"/_sandbox/contacts/{cd_id}").json()
        return data


@pytest.fixture
def afas() -> Iterator[Afas]:
    with running_sandbox(contacts=40, seed=3) as (server, _), \
            httpx.Client(base_url=server.url, timeout=10) as http, \
            AfasClient(f"{server.url}/ProfitRestServices", DEFAULT_TOKEN, timeout=10) as client:
        yield Afas(client, http)


@pytest.fixture
def spotler() -> Iterator[SpotlerClient]:
    with BackgroundServer(create_app()) as server, \
            SpotlerClient(f"{server.url}/integrationservice-1.1.0", DEFAULT_KEY, DEFAULT_SECRET) as client:
        yield client


def subscribed(afas: Afas, n: int) -> dict[str, Any]:
    """The ``n``-th contact of the GetConnector that receives the newsletter."""
    rows = [r for page in afas.client.iter_pages("Spotler_Contacts", key="ContactId", page_size=50) for r in page]
    views = [afas.contact(str(r["ContactId"])) for r in rows]
    return [v for v in views if v.get("Newsletter") is True and v.get("PersonNo") and v.get("OrganisationId")][n]


def back(contact: dict[str, Any], changes: dict[str, Value], stamp: int, **extra: Any) -> AfasChange:
    return AfasChange(contact_id=str(contact["ContactId"]), person_id=str(contact["PersonNo"]),
                      organisation_id=str(contact["OrganisationId"]), changes=changes,
                      stamps=dict.fromkeys(changes, stamp), bases=dict.fromkeys(changes, 0), **extra)


def to_spotler(cid: str, changes: dict[str, Value], stamp: int, *, new: bool = False,
               blocked: bool = False) -> ContactChange:
    return ContactChange(contact_id=cid, changes=changes, person_id="P1", organisation_id="O1", new=new,
                         blocked=blocked, stamps=dict.fromkeys(changes, stamp), bases=dict.fromkeys(changes, 0))


def spotler_write(spotler: SpotlerClient, client: redis.Redis, changes: list[ContactChange], now_ms: int) -> None:
    """What ``upsert_batch`` does: write the batch, then hand its outcome to the trail."""
    outcome = write_batch(changes, client=spotler, ordering=Ordering(client), all_bits=(1, 2))
    consent_hook.to_spotler(client, outcome, retention_s=2 * YEAR_S, now_ms=now_ms)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def export(redis_url: str, *args: str) -> str:
    settings = Settings.from_env({"REDIS_URL": redis_url})
    result = CliRunner().invoke(consent, ["export", *args], obj=AppContext(settings=settings))
    assert result.exit_code == 0, result.output
    return result.output


def test_opt_outs_opt_ins_a_block_and_a_hard_bounce_are_exported_with_both_times(
    afas: Afas, spotler: SpotlerClient, redis_client: redis.Redis, redis_url: str,
) -> None:
    deps = AfasDeps(client=afas.client, redis=redis_client, mapping=MAPPING, ordering=Ordering(redis_client))
    opted_out, bounced = subscribed(afas, 0), subscribed(afas, 1)
    # A recipient's opt-out in Spotler, written back to AFAS by the AFAS actor's ``apply``.
    assert apply(back(opted_out, {"permissions.1": False}, STAMP + 1), deps).written == ["KnContact"]
    assert afas.contact(str(opted_out["ContactId"]))["Newsletter"] is False
    # A hard bounce from Spotler's feed (its date is the change's stamp).
    bounce = back(bounced, {}, 0, bounce="HARDBOUNCE", last_changed=STAMP + 2)
    assert apply(bounce, deps).written == ["KnContact"]
    # AFAS: a new contact without the newsletter, then its opt-in; another contact blocked.
    spotler_write(spotler, redis_client, [to_spotler("8001", {"email": "a@example.org", "permissions.1": False},
                                                     STAMP + 3, new=True),
                                          to_spotler("8002", {"email": "b@example.org", "permissions.1": True},
                                                     STAMP + 3, new=True)], now_ms=STAMP + 10_000)
    spotler_write(spotler, redis_client, [to_spotler("8001", {"permissions.1": True}, STAMP + 4),
                                          to_spotler("8002", {"permissions.1": False}, STAMP + 5, blocked=True)],
                  now_ms=STAMP + 20_000)

    rows = list(csv.DictReader(io.StringIO(export(redis_url, "--since", "2000-01-01"))))
    assert tuple(rows[0]) == COLUMNS
    seen = {(r["contact_id"], r["kind"], r["field"], r["old"], r["new"], r["source"], r["target"], r["result"],
             r["source_stamp"]) for r in rows}
    oid, bid = str(opted_out["ContactId"]), str(bounced["ContactId"])
    assert seen == {
        (oid, "permission", "permissions.1", "true", "false", "spotler", "afas", "written", str(STAMP + 1)),
        (bid, "hard_bounce", "bounce", "", "true", "spotler", "afas", "written", str(STAMP + 2)),
        ("8001", "permission", "permissions.1", "", "false", "afas", "spotler", "written", str(STAMP + 3)),
        ("8002", "permission", "permissions.1", "", "true", "afas", "spotler", "written", str(STAMP + 3)),
        ("8001", "permission", "permissions.1", "false", "true", "afas", "spotler", "written", str(STAMP + 4)),
        ("8002", "permission", "permissions.1", "true", "false", "afas", "spotler", "written", str(STAMP + 5)),
        ("8002", "blocked", "blocked", "false", "true", "afas", "spotler", "written", str(STAMP + 5)),
    }
    assert all(r["applied_at"] and r["applied_time"].endswith("Z") for r in rows)
    assert [int(r["applied_at"]) for r in rows] == sorted(int(r["applied_at"]) for r in rows)
    assert {r["applied_at"] for r in rows if r["contact_id"] == "8002" and r["kind"] == "blocked"} == {
        str(STAMP + 20_000)}
    assert {r["source_time"] for r in rows if r["kind"] == "blocked"} == {_iso(STAMP + 5)}
    assert "example.org" not in export(redis_url, "--since", "2000-01-01", "--format", "json")

    # The export starts at --since; forget removes the contact's trail and nothing else.
    later = json.loads(export(redis_url, "--since", _iso(STAMP + 15_000)[:-1], "--format", "json"))
    # (the AFAS writes were applied just now, the first Spotler batch before --since)
    assert sorted((r["contact_id"], r["kind"], r["source_stamp"]) for r in later) == sorted([
        (oid, "permission", STAMP + 1), (bid, "hard_bounce", STAMP + 2), ("8001", "permission", STAMP + 4),
        ("8002", "permission", STAMP + 5), ("8002", "blocked", STAMP + 5)])
    assert erase(redis_client, ["8002"]).consent_records == 3
    assert ConsentTrail(redis_client).timeline("8002") == []
    assert len(ConsentTrail(redis_client).timeline("8001")) == 2


def test_a_block_written_again_is_one_record_and_an_unblock_another(
    spotler: SpotlerClient, redis_client: redis.Redis,
) -> None:
    spotler_write(spotler, redis_client, [to_spotler("8101", {"email": "c@example.org", "permissions.1": False},
                                                     STAMP, new=True, blocked=True)], now_ms=STAMP + 1)
    spotler_write(spotler, redis_client, [to_spotler("8101", {"lastName": "Naam"}, STAMP + 1, blocked=True)],
                  now_ms=STAMP + 2)
    spotler_write(spotler, redis_client, [to_spotler("8101", {"lastName": "Ander"}, STAMP + 2)], now_ms=STAMP + 3)
    blocks = [(r.old, r.new, r.applied_at) for r in ConsentTrail(redis_client).timeline("8101") if r.kind == "blocked"]
    assert blocks == [(False, True, STAMP + 1), (True, False, STAMP + 3)]


def test_a_superseded_opt_in_is_recorded_as_superseded(spotler: SpotlerClient, redis_client: redis.Redis) -> None:
    spotler_write(spotler, redis_client, [to_spotler("8201", {"email": "d@example.org", "permissions.1": False},
                                                     STAMP + 50, new=True)], now_ms=STAMP + 100)
    # An older opt-in delivered late: the ordering check supersedes it, Spotler keeps the opt-out.
    spotler_write(spotler, redis_client, [to_spotler("8201", {"permissions.1": True}, STAMP + 10)],
                  now_ms=STAMP + 200)
    # A redelivery of the applied opt-out changes nothing: no record.
    spotler_write(spotler, redis_client, [to_spotler("8201", {"permissions.1": False}, STAMP + 50)],
                  now_ms=STAMP + 300)
    trail = ConsentTrail(redis_client).timeline("8201")
    assert [(r.new, r.result, r.source_stamp) for r in trail] == [(False, "written", STAMP + 50),
                                                                  (True, "superseded", STAMP + 10)]


def test_an_unmapped_hard_bounce_is_recorded_as_rejected(afas: Afas, redis_client: redis.Redis) -> None:
    nowhere = msgspec.structs.replace(MAPPING, bounce=BounceRule())
    deps = AfasDeps(client=afas.client, redis=redis_client, mapping=nowhere, ordering=Ordering(redis_client))
    contact = subscribed(afas, 0)
    apply(back(contact, {}, 0, bounce="HARDBOUNCE", last_changed=STAMP), deps)
    [record] = ConsentTrail(redis_client).timeline(str(contact["ContactId"]))
    assert (record.kind, record.result, record.source_stamp) == ("hard_bounce", "rejected", STAMP)


def test_an_opt_out_redelivered_to_afas_is_recorded_once(afas: Afas, redis_client: redis.Redis) -> None:
    deps = AfasDeps(client=afas.client, redis=redis_client, mapping=MAPPING, ordering=Ordering(redis_client))
    contact = subscribed(afas, 0)
    opt_out = back(contact, {"permissions.1": False}, STAMP)
    apply(opt_out, deps)
    assert apply(opt_out, deps).superseded == ["permissions.1"]
    trail = ConsentTrail(redis_client).timeline(str(contact["ContactId"]))
    assert [(r.field, r.new, r.result) for r in trail] == [("permissions.1", False, "written")]


def test_a_trail_that_cannot_be_stored_is_counted_not_raised(redis_client: redis.Redis) -> None:
    # A key of the wrong type stands in for any Redis error while recording.
    redis_client.set("connector:consent:c:8301", "not a sorted set")
    change = AfasChange(contact_id="8301", person_id="P", organisation_id="O", changes={}, bounce="HARDBOUNCE",
                        last_changed=STAMP)
    consent_hook.to_afas(redis_client, change, AfasOutcome(written=["KnContact"]), retention_s=YEAR_S)
    assert redis_client.hget(COUNTERS, "consent_unrecorded") == b"1"


def test_records_hold_no_values_beyond_ids_booleans_and_times() -> None:
    assert {f for f in ConsentRecord.__struct_fields__} == {
        "contact_id", "kind", "field", "new", "old", "bit", "source", "source_stamp", "target", "applied_at",
        "result"}
