"""``connector resync --dry-run`` end to end: it reports exactly the edits made on either side, writes nothing.

Presentation (see ``connector.sync.dry_run``): an AFAS edit is a field going *to
Spotler* (Spotler's value → AFAS's); a Spotler edit of a field that may go back
is a field going *back to AFAS* (AFAS's value → Spotler's); a Spotler edit of a
one-way field is a field going to Spotler (AFAS's value overwrites it); a
block is an *unsubscribe*.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from tests.e2e.helpers import afas_expectation, wait_for_quiet

from connector.redaction import mask_value
from connector.stack import Stack
from connector.sync.dry_run import DryRunReport
from connector.sync.rows import ContactRecord

pytestmark = pytest.mark.e2e

BOTH = ("afas", "spotler")
Entry = tuple[str, str, str]  # (contact, direction, field)


@pytest.fixture
def synced(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Stack]:
    """A link that synced both ways, then stopped: nothing moves while the test looks."""
    with Stack(tmp_path, redis_url=redis_url, contacts=300, seed=5, env={"POLL_INTERVAL_S": "1"}) as s:
        s.start_sandboxes()
        for queue in BOTH:
            s.start(f"{queue}-worker", "work", "--queue", queue, "--threads", "4")
        for source in BOTH:
            s.start(f"{source}-producer", "produce", source)
        wait_for_quiet(s, redis_client, sources=BOTH)
        wait_for_quiet(s, redis_client, sources=BOTH)
        for name in ("afas-producer", "spotler-producer", "spotler-worker", "afas-worker"):
            s.processes[name].stop()
        yield s


def dry_run(stack: Stack) -> tuple[DryRunReport, str]:
    done = subprocess.run(
        [sys.executable, "-m", "connector", "resync", "--dry-run", "--json", "--sample", "100000"],
        env=stack.env(), capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stderr
    return msgspec.json.decode(done.stdout, type=DryRunReport), done.stdout


def entries(report: DryRunReport) -> set[Entry]:
    return {(p.contact_id, direction, d.field)
            for p in report.sample
            for direction, diffs in (("to_spotler", p.to_spotler), ("to_afas", p.to_afas))
            for d in diffs}


def redis_snapshot(client: redis.Redis) -> dict[bytes, Any]:
    return {key: client.dump(key) for key in client.scan_iter(count=1000)}


def test_dry_run_reports_exactly_the_edits_on_both_sides_and_writes_nothing(
    synced: Stack, redis_client: redis.Redis
) -> None:
    stack = synced
    baseline, _ = dry_run(stack)
    assert baseline.sample_size == 100000
    assert len(baseline.sample) == baseline.changed
    valid, _ = afas_expectation(stack)
    busy = {p.contact_id for p in baseline.sample}
    records = [r for cid, r in sorted(valid.items(), key=lambda kv: int(kv[0])) if cid not in busy and not r.blocked]

    # The organisation edit touches every contact of one organisation: pick the others elsewhere.
    by_org: dict[str, list[ContactRecord]] = {}
    for r in records:
        by_org.setdefault(r.organisation_id, []).append(r)
    org = next(o for o, rs in by_org.items() if len(rs) >= 2)
    person_rows = {r.person_id: [x for x in valid.values() if x.person_id == r.person_id] for r in records}
    others = [r for r in records if r.organisation_id != org and len(person_rows[r.person_id]) == 1]
    renamed, blocked, unsubscribed = [r for r in others if r.values["permissions.1"] is True][:3]
    spotler_named, spotler_city = [r for r in others if r not in (renamed, blocked, unsubscribed)][:2]

    stack.afas("POST", "edit", json={"entity": "person", "id": renamed.person_id, "fields": {"FiNm": "Droogzwemmer"}})
    stack.afas("POST", "edit", json={"entity": "organisation", "id": org, "fields": {"Nm": "Proefdraai B.V."}})
    stack.afas("POST", "edit", json={"entity": "contact", "id": blocked.contact_id, "fields": {"Bl": True}})
    stack.spotler("POST", "unsubscribe", json={"externalId": unsubscribed.contact_id, "bit": 1})
    stack.spotler("POST", "edit", json={"externalId": spotler_named.contact_id,
                                        "properties": {"lastName": "Uit-Spotler"}})
    stack.spotler("POST", "edit", json={"externalId": spotler_city.contact_id, "properties": {"city": "Elders"}})

    expected: set[Entry] = {(renamed.contact_id, "to_spotler", "firstName")}
    expected |= {(r.contact_id, "to_spotler", "organisation") for r in valid.values() if r.organisation_id == org}
    expected |= {(blocked.contact_id, "to_spotler", f"permissions.{b}")
                 for b in (1, 2) if blocked.values[f"permissions.{b}"]}
    expected |= {(unsubscribed.contact_id, "to_afas", "permissions.1"),
                 (spotler_named.contact_id, "to_afas", "lastName"),
                 (spotler_city.contact_id, "to_spotler", "city")}

    stack.afas("DELETE", "requests")
    stack.spotler("DELETE", "requests")
    before = redis_snapshot(redis_client)
    report, output = dry_run(stack)
    after = redis_snapshot(redis_client)

    # Exactly those contacts and fields, on top of what was already pending before the edits.
    assert entries(report) - entries(baseline) == expected
    assert entries(baseline) <= entries(report)
    plans = {p.contact_id: p for p in report.sample}
    assert plans[blocked.contact_id].action == "unsubscribe"
    assert plans[renamed.contact_id].action == "update"
    assert plans[spotler_city.contact_id].action == "update"
    assert plans[unsubscribed.contact_id].action == "write-back"
    assert plans[spotler_named.contact_id].action == "write-back"
    city = plans[spotler_city.contact_id].to_spotler[0]
    assert (city.old, city.new) == (mask_value("Elders"), mask_value(spotler_city.values["city"]))
    named = plans[spotler_named.contact_id].to_afas[0]
    assert (named.old, named.new) == (mask_value(spotler_named.values["lastName"]), mask_value("Uit-Spotler"))
    assert (report.unsubscribe, report.write_back) == (baseline.unsubscribe + 1, baseline.write_back + 2)
    assert "@" not in output
    assert "Droogzwemmer" not in output  # names are personal: masked like addresses

    # Nothing written: only GETs reached either API, and Redis holds what it held.
    afas_routes = stack.afas("GET", "requests")["routes"]
    spotler_routes = stack.spotler("GET", "requests")["routes"]
    assert afas_routes.get("GET /connectors/Spotler_Contacts", 0) >= 1
    assert spotler_routes.get("GET /contact/updates/list", 0) >= 1
    assert all(route.startswith("GET ") for route in (*afas_routes, *spotler_routes)), (afas_routes, spotler_routes)
    assert set(after) <= set(before)
    assert {k: v for k, v in after.items() if before.get(k) != v} == {}
