"""``connector resync`` with ``deletions = "unsubscribe"``: only contacts really gone are unsubscribed.

The AFAS sandbox never deletes a contact and its GetConnector definitions
have no row filter, so the one way a synced contact leaves the GetConnector is
a change of the definition's contact types: without ``PRS`` (persons at an
organisation) every synced contact is gone from it, and back with it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.e2e.test_nothing_lost import (
    GETCONNECTOR,
    assert_in_agreement,
    define,
    definition,
    make_stack,
    mapped,
    request_log,
    settle,
    spotler_now,
    start_link,
)

from connector.schemas.mapping import default_mapping_path
from connector.stack import Stack, wait_until
from connector.state.agreed import AgreedStore
from connector.state.queues import outstanding

pytestmark = pytest.mark.e2e

__all__ = ["make_stack"]  # the fixture, shared with the main module

NO_PERSONS = ["AFD", "PER"]
_SUMMARY = re.compile(r"(\d+) rows read, .* (\d+) no longer in AFAS \(deletions = (\w+)\)")


def unsubscribe_mapping(tmp_path: Path) -> Path:
    """A copy of the example mapping with ``deletions = "unsubscribe"``."""
    text = default_mapping_path().read_text()
    assert 'deletions = "ignore"' in text
    path = tmp_path / "mapping.toml"
    path.write_text(text.replace('deletions = "ignore"', 'deletions = "unsubscribe"'))
    return path


def resync(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector", "resync", *args], env=stack.env(),
                          capture_output=True, text=True, timeout=600, check=False)


def summary(output: str) -> tuple[int, int, str]:
    """(rows read, contacts no longer in AFAS, deletions policy) from the resync's last line."""
    found = _SUMMARY.search(output)
    assert found is not None, output
    return int(found[1]), int(found[2]), found[3]


def drained(client: redis.Redis) -> None:
    wait_until(lambda: outstanding(client, "spotler") == 0, timeout_s=300, interval_s=0.2)


@pytest.mark.timeout(600)
def test_contacts_out_of_view_and_back_during_a_resync_are_not_unsubscribed(
    make_stack: Callable[..., Stack], redis_client: redis.Redis, tmp_path: Path
) -> None:
    # 9,500 rows: two pages of a full pass (150,000 cells a call, 17 columns: 8,823 rows a page).
    stack = make_stack(9_500, seed=25, CONNECTOR_MAPPING=str(unsubscribe_mapping(tmp_path)))
    start_link(stack, workers=2, sources=("afas",))
    settle(stack, redis_client, cycles=1, sources=("afas",), timeout_s=600)
    valid = assert_in_agreement(stack)
    stack.processes["afas-producer"].stop()
    before = spotler_now(stack)
    defn = definition(stack)
    stack.spotler("DELETE", "requests")

    # Each AFAS call takes 1.5 s. Once the first page is answered, the persons' contacts leave the
    # GetConnector; once the second page is answered (without them), they are back.
    stack.afas("PUT", "faults", json={"latency_ms": 1500})
    started = time.time()
    proc = stack.start("resync", "resync")

    def answered(n: int) -> bool:
        """True once ``n`` GetConnector pages were answered; raises if the resync ended before."""
        if sum(1 for r in request_log(stack, "afas", started) if r["route"] == GETCONNECTOR) >= n:
            return True
        assert proc.alive(), f"resync exited ({proc.wait(5)}) before page {n}:\n{proc.output()[-3000:]}"
        return False

    wait_until(lambda: answered(1), timeout_s=240, interval_s=0.05)
    define(stack, {**defn, "contact_types": NO_PERSONS})
    wait_until(lambda: answered(2), timeout_s=240, interval_s=0.05)
    define(stack, defn)
    stack.afas("PUT", "faults", json={})
    assert proc.wait(300) == 0, proc.output()[-3000:]

    read, gone, policy = summary(proc.output())
    assert read < 9_500, "the walk missed the contacts that were out of view"
    assert (gone, policy) == (0, "unsubscribe")
    drained(redis_client)
    assert stack.spotler("GET", "requests")["routes"].get("POST /contact/list", 0) == 0
    assert spotler_now(stack) == before
    assert_in_agreement(stack, mapped(valid))


def signups(stack: Stack, n: int) -> dict[str, dict[str, Any]]:
    """Contacts that signed up in Spotler itself: the link never synced them."""
    contacts = {f"aanmelding-{i}": {"email": f"aanmelding{i}@voorbeeld.nl", "lastName": f"Aanmelder{i}",
                                    "permissions": [{"bit": 1, "enabled": True}, {"bit": 2, "enabled": True}]}
                for i in range(n)}
    stack.spotler("POST", "contacts", json={"contacts": [{"externalId": k, "properties": v}
                                                         for k, v in contacts.items()]})
    return contacts


def test_a_resync_unsubscribes_more_than_the_allowed_share_only_with_yes(
    make_stack: Callable[..., Stack], redis_client: redis.Redis, tmp_path: Path
) -> None:
    stack = make_stack(600, seed=26, CONNECTOR_MAPPING=str(unsubscribe_mapping(tmp_path)))
    start_link(stack, sources=("afas",))
    settle(stack, redis_client, cycles=2, sources=("afas",))
    valid = assert_in_agreement(stack)
    assert sorted(AgreedStore(redis_client).contact_ids(), key=int) == sorted(valid, key=int)
    signups(stack, 3)
    stack.processes["afas-producer"].stop()
    before = spotler_now(stack)

    # Every synced contact leaves the GetConnector: far more than DELETIONS_MAX_SHARE (5 %).
    define(stack, {**definition(stack), "contact_types": NO_PERSONS})
    held = resync(stack)
    assert held.returncode == 1, held.stdout + held.stderr
    n = len(valid)
    assert (f"{n} of {n} synced contacts (100.0%) are no longer in the GetConnector, more than the 5% "
            "one pass may unsubscribe (DELETIONS_MAX_SHARE): nothing was unsubscribed") in held.stderr
    assert "connector resync --yes" in held.stderr
    drained(redis_client)
    assert spotler_now(stack) == before

    done = resync(stack, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary(done.stdout)[1:] == (n, "unsubscribe")
    drained(redis_client)
    off = {"permissions.1": False, "permissions.2": False}
    assert spotler_now(stack) == {cid: {**v, **off} if cid in valid else v for cid, v in before.items()}
