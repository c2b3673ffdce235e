"""bench/journal_cost.py at a small size: every mode syncs, and every figure it promises is there and sane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench" / "journal_cost.py"


@pytest.mark.timeout(600)
def test_the_journal_cost_bench_measures_the_three_families_and_times_them() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # its own embedded Redis: it measures memory
    run = subprocess.run([sys.executable, str(BENCH), "--contacts", "1500", "--micro", "300", "--json"],
                         capture_output=True, text=True, timeout=540, check=False, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line = next(line for line in run.stdout.splitlines() if line.startswith("JOURNAL_COST "))
    runs = json.loads(line.removeprefix("JOURNAL_COST "))["runs"]
    assert [r["mode"] for r in runs] == ["journal off", "journal on", "journal on + outbox"]
    off, on, outbox = runs
    rows = off["valid"] + off["invalid"]
    assert 0 < off["invalid"] < off["valid"]
    assert rows == 1500
    for r in runs:
        assert r["valid"] == off["valid"]
        assert r["contacts_per_s"] > 0
        assert r["wall_s"] > 0
        assert r["cpu_s"]["link"] > 0
        assert r["cpu_s"]["redis"] > 0
        assert r["consent_records_per_contact"] > 0  # the trail has no switch
        assert 0 < r["redis_bytes_per_contact_without_the_three"] < r["redis_bytes_per_contact_settled"]
        assert r["families"]["consent"]["used_memory_drop"] > 0

    assert off["families"]["journal"]["keys"] == 0
    assert on["eval_calls"] - off["eval_calls"] >= rows  # an append is one script call per contact
    assert "journal_anatomy" not in off
    for r in (on, outbox):
        journal = r["families"]["journal"]
        assert journal["keys"] == rows  # every row has a journal: a sync's steps or its rejection
        assert 0 < journal["memory_usage_per_contact"] < 300  # the budget, in MEMORY USAGE
        assert journal["used_memory_drop"] >= journal["memory_usage_bytes"] * 0.9
        anatomy = r["journal_anatomy"]
        assert anatomy["frames_per_contact"] >= 2  # seen and written, at least
        assert 0 <= anatomy["steps_with_field_names"] <= anatomy["frames_per_contact"] * r["valid"]
        sample = anatomy["sample"]
        assert sum(f["frame_bytes"] for f in sample["frames"]) == sample["value_bytes"]
        assert sample["memory_usage"] > sample["value_bytes"]

    assert "events" not in on
    assert on["families"]["outbox"]["keys"] == 0
    assert outbox["events_by_kind"]["contact.synced"] == outbox["valid"]
    assert outbox["events_by_kind"].get("record.rejected") == outbox["invalid"]
    assert outbox["events"] == sum(outbox["events_by_kind"].values())
    assert outbox["families"]["outbox"]["memory_usage_per_contact"] > 0

    micro = outbox["micro"]
    assert "micro" not in off
    assert "micro" not in on
    assert micro["contacts"] == 300
    assert [j["held_before"] for j in micro["journal"]][-2:] == [49, 50]
    assert all(j["us_per_step"] > 0 for j in micro["journal"])
    # The sync's steps in its order, the AFAS producer's a page a call.
    assert [j["step"] for j in micro["journal"]][:2] == ["Seen afas to_spotler", "Wrote spotler ok, attempt 1"]
    assert micro["journal"][0]["per_call"] == micro["producer_page"]
    assert micro["consent_us_per_record"] > 0
    assert micro["consent_records_per_contact"] >= 1
    assert micro["outbox_us_per_event"] > 0
    assert micro["outbox_events_per_contact"] >= 2
    assert micro["journal_full_value_bytes"] > sample["value_bytes"]
