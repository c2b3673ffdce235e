"""The worker-scaling and fair-peer benches, CI-sized: they run, print their figures and end right."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str, prefix: str, *args: str) -> dict[str, Any]:
    run = subprocess.run([sys.executable, str(BENCH / script), *args],
                         capture_output=True, text=True, timeout=600, check=False)
    print(run.stdout[-10_000:])
    lines = [line for line in run.stdout.splitlines() if line.startswith(prefix + " ")]
    assert run.returncode == 0, run.stderr[-5000:]
    assert lines, f"no {prefix} line; stderr:\n{run.stderr[-5000:]}"
    figures: dict[str, Any] = json.loads(lines[-1].removeprefix(prefix + " "))
    return figures


def check_run(run: dict[str, Any], valid: int) -> None:
    assert run["contacts"] == valid
    assert run["correct"], "Spotler does not hold exactly the valid AFAS contacts"
    assert run["in_spotler"] == valid
    assert run["wall_s"] > 0
    assert run["contacts_per_s"] == pytest.approx(valid / run["wall_s"])
    # Every valid contact went out in a batch of at most 100: at least that many writes.
    assert run["spotler_writes"] >= math.ceil(valid / 100)
    assert run["spotler_calls"] >= run["spotler_writes"] + run["spotler_429"]
    assert run["first_poll_s"] > 0


@pytest.mark.timeout(900)
def test_worker_scaling_bench_syncs_every_contact_per_worker_count() -> None:
    figures = run_bench("worker_scaling.py", "SCALING", "--contacts", "800", "--workers", "1,2",
                        "--latency-ms", "20", "--capped-rate", "40", "--poll-interval", "2")
    valid = figures["valid"]
    assert 0 < valid < 800
    for cap, rate in (("uncapped", 10_000), ("capped", 40)):
        runs = figures[cap]
        assert [r["workers"] for r in runs] == [1, 2]
        for run in runs:
            check_run(run, valid)
            assert run["threads"] == 4
            assert run["connector_rate_per_s"] == rate
        assert all(r["sandbox_rate_per_s"] == (40 if cap == "capped" else None) for r in runs)
    assert all(r["spotler_429"] == 0 for r in figures["uncapped"])  # no limit, no 429


@pytest.mark.timeout(900)
def test_fair_peer_bench_compares_connector_peer_and_bound() -> None:
    figures = run_bench("fair_peer.py", "FAIR_PEER", "--contacts", "800", "--latency-ms", "10", "--rate", "20",
                        "--poll-interval", "2")
    valid = figures["valid"]
    check_run(figures["connector"], valid)
    assert figures["bound_s"] == pytest.approx(valid / (100 * 20))
    assert figures["connector_vs_bound"] == pytest.approx(figures["connector"]["wall_s"] / figures["bound_s"])
    peer = figures["peer"]
    assert peer["correct"]
    assert peer["in_spotler"] == valid
    detail = peer["detail"]
    assert detail["written"] == valid
    assert detail["rows"] == 800
    assert detail["invalid"] == 800 - valid
    assert detail["failed"] == 0
    # The peer sends full batches across pages: the fewest writes there can be.
    assert detail["batches"] == math.ceil(valid / 100)
    assert peer["spotler_writes"] == detail["batches"] + detail["rate_limited"] + detail["retried"]
    assert peer["afas_calls"] == detail["afas_requests"]
    assert figures["faster_than_peer"] == (figures["connector"]["wall_s"] < peer["wall_s"])
