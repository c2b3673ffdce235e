"""bench/scale.py at a small size: it runs end to end and reports every figure it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale.py"


@pytest.mark.timeout(600)
def test_the_scale_bench_syncs_everything_and_reports_its_figures() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # its own embedded Redis: it measures memory
    run = subprocess.run([sys.executable, str(BENCH), "--contacts", "3000", "--json", "--poll-interval", "2"],
                         capture_output=True, text=True, timeout=540, check=False, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line = next(line for line in run.stdout.splitlines() if line.startswith("SCALE "))
    figures = json.loads(line.removeprefix("SCALE "))
    initial, incremental = figures["initial"], figures["incremental"]
    header = next(line for line in run.stdout.splitlines() if "valid," in line)
    valid = int(header.split("(")[1].split(" valid")[0].replace(",", ""))
    assert initial["written"] == valid
    assert initial["contacts_per_s"] > 0
    assert 0 < initial["spotler_calls_per_contact"] < 0.05  # batches of 100, not one call per contact
    assert initial["redis_bytes_per_contact_settled"] > 0
    assert initial["redis_bytes_per_contact_peak"] >= initial["redis_bytes_per_contact_settled"]
    assert initial["page_ms_by_tenth"]
    assert incremental["changed"] == len(range(0, valid, 100))
    assert 0 < incremental["spotler_calls"] < incremental["changed"]
    assert set(figures["peak_rss_mb"]) == {"afas-producer", "spotler-worker-1", "spotler-worker-2"}
