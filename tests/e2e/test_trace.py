"""``connector trace`` on a running link: a contact edited on both sides, a conflict, echoes, a dead letter replayed.

Real processes against both sandboxes: the journal is written by the
producers and workers as they run, and the trace (text and JSON) is read by a
separate ``connector trace`` process, with both sides read live.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from tests.e2e.test_forget import connector
from tests.e2e.test_nothing_lost import afas_edit, make_stack, plain, settle, start_link

from connector.stack import Stack, wait_until
from connector.state.queues import outstanding
from connector.workers.dead_letters import DeadLetterStore

pytestmark = pytest.mark.e2e

__all__ = ["make_stack"]


def trace(stack: Stack, cid: str) -> dict[str, Any]:
    done = connector(stack, "trace", cid, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def position(texts: list[str], needle: str, after: int = -1) -> int:
    """The first step after ``after`` whose line holds ``needle``."""
    for n, text in enumerate(texts):
        if n > after and needle in text:
            return n
    raise AssertionError(f"no step with {needle!r} after step {after} in:\n" + "\n".join(texts))


@pytest.mark.timeout(900)
def test_trace_tells_a_contacts_story_in_order_with_the_right_verdicts(
    make_stack: Callable[..., Stack], redis_client: redis.Redis
) -> None:
    stack = make_stack(30, seed=52)
    start_link(stack)
    settle(stack, redis_client, cycles=2)
    valid = stack.afas_records()[0]
    cid = plain(valid)[0]
    person = valid[cid].person_id

    # 1. Both sides change lastName between two polls: a conflict, newest wins (AFAS's edit, seconds later:
    #    AFAS stamps rows to the second).
    for source in ("afas", "spotler"):
        stack.processes[f"{source}-producer"].stop()
    stack.spotler("POST", "edit", json={"externalId": cid, "properties": {"lastName": "Traceer-Spotler"}})
    time.sleep(2.5)
    afas_edit(stack, "person", person, LaNm="Traceer-Afas")
    for source in ("afas", "spotler"):
        stack.start(f"{source}-producer", "produce", source)
    settle(stack, redis_client)
    after_conflict = trace(stack, cid)
    assert after_conflict["verdict"] == "in step", after_conflict
    [last_name] = [r for r in after_conflict["fields"] if r["field"] == "lastName"]
    assert last_name["same"] is True
    assert last_name["afas"] == last_name["spotler"] == last_name["agreed"]
    assert "Traceer" not in json.dumps(after_conflict)  # values are masked, never shown

    # 2. A Spotler edit whose write into AFAS is refused: dead-lettered; then replayed.
    stack.processes["afas-worker-1"].stop()
    stack.spotler("POST", "edit", json={"externalId": cid, "properties": {"firstName": "Traceer-Voornaam"}})
    wait_until(lambda: outstanding(redis_client, "afas") > 0, timeout_s=120)
    stack.processes["afas-producer"].stop()  # its polls would fail on the fault below, and say nothing new
    stack.afas("PUT", "faults", json={"error_rate": 1.0, "error_status": 400})
    stack.start("afas-worker-1", "work", "--queue", "afas", "--threads", "4")
    store = DeadLetterStore(redis_client)
    wait_until(lambda: store.count("afas") > 0, timeout_s=120)
    stack.afas("PUT", "faults", json={"error_rate": 0.0})
    dead = trace(stack, cid)
    [letter] = store.list("afas")
    assert dead["verdict"].startswith(f"dead-lettered: {letter.id} (afas, fatal"), dead["verdict"]
    assert dead["dead_letters"]

    replayed = connector(stack, "dlq", "replay", letter.id, "--yes")
    assert replayed.returncode == 0, replayed.stderr
    stack.start("afas-producer", "produce", "afas")
    settle(stack, redis_client)
    final = trace(stack, cid)
    assert final["verdict"] == "in step", final

    texts = [s["text"] for s in final["timeline"]]
    # The initial sync: AFAS's row enqueued for Spotler, written, and its echo suppressed.
    first = position(texts, "change seen in AFAS")
    assert "enqueued for Spotler" in texts[first]
    wrote = position(texts, "write into Spotler contact/list", first)
    assert texts[wrote].endswith(": ok")
    position(texts, "change seen in Spotler: echo of our own write, suppressed", wrote)
    # The conflict, settled by its rule, and its winner written into Spotler, which comes back as an echo.
    conflict = position(texts, "conflict on lastName settled by newest: AFAS wins", wrote)
    into_spotler = position(texts, "write into Spotler contact/list (lastName)", conflict)
    assert texts[into_spotler].endswith(": ok")
    echo = position(texts, "change seen in Spotler: echo of our own write, suppressed", into_spotler)
    # The refused write, its dead letter, the replay and the write that then landed (its AFAS echo last).
    seen = position(texts, "change seen in Spotler (firstName): enqueued for AFAS", echo)
    dead_at = position(texts, f"dead-lettered (fatal) on queue afas as {letter.id}", seen)
    replay_at = position(texts, f"dead letter {letter.id} replayed", dead_at)
    landed = position(texts, "write into AFAS", replay_at)
    assert "firstName" in texts[landed]
    assert texts[landed].endswith(": ok")
    position(texts, "change seen in AFAS: echo of our own write, suppressed", landed)
    assert [s["at"] for s in final["timeline"]] == sorted(s["at"] for s in final["timeline"])

    # The text form says the same, and neither form shows a value.
    shown = connector(stack, "trace", cid)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"contact {cid}: in step")
    assert f"dead letter {letter.id} replayed" in shown.stdout
    assert "Traceer" not in shown.stdout
