"""The status page in headless Chromium while a real link syncs, compared with ``connector status --json``.

Producers poll once (a long POLL_INTERVAL_S), so after a phase the figures stand
still and the page and the CLI report can be compared figure by figure; only
ages and lags move, by exactly the time between the two reports.
Set STATUS_PAGE_SCREENSHOT=docs/status-page.png to refresh the screenshot in the docs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from tests.web.chromium import dump_dom, ensure_chromium, png_size, read_metrics, screenshot
from tests.web.page_metrics import assert_same_moment, expected_metrics

from connector.sandbox.server import free_port
from connector.stack import Stack, wait_until
from connector.state.queues import outstanding
from connector.state.runs import RunHistory
from connector.status.queues import queue_status

# The first run may install Chromium with apt-get (ensure_chromium), which can take minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

TOKEN = "page-test-token"


@pytest.fixture
def stack(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Stack]:
    env = {"POLL_INTERVAL_S": "3600", "STATUS_TOKEN": TOKEN, "SPOTLER_RATE_PER_S": "200"}
    with Stack(tmp_path / "stack", redis_url=redis_url, contacts=1500, seed=7, env=env) as running:
        running.start_sandboxes()
        yield running


def start_web(stack: Stack) -> str:
    port = free_port()
    web = stack.start("web", "web", "--host", "127.0.0.1", "--port", str(port))
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if not web.alive():
            raise RuntimeError(f"web exited:\n{web.output()[-2000:]}")
        try:
            return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, timeout_s=60)
    return url


def cli_report(stack: Stack) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "connector", "status", "--json"], env=stack.env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 2, 3), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_page_in_chromium_shows_what_connector_status_reports(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    chromium = ensure_chromium()
    page_url = f"{start_web(stack)}/?token={TOKEN}"
    # Two AFAS contacts sharing one address: Spotler refuses the second, a dead letter.
    stack.spotler("PUT", "settings", json={"dedupe_on_email": True})
    stack.start("afas-producer", "produce", "afas")
    stack.start("spotler-producer", "produce", "spotler")
    history = RunHistory(redis_client)
    wait_until(lambda: history.last("afas") and history.last("spotler"), timeout_s=180)

    # 1. Polled, nothing consumed yet: a backlog the page and the CLI must agree on exactly.
    page = read_metrics(dump_dom(chromium, page_url))
    code, report = cli_report(stack)
    assert_same_moment(page, report)
    assert int(page["queue.spotler.ready"]) == report["runs"]["afas"][0]["enqueued_messages"] > 0
    assert int(page["rejections.total"]) > 0
    assert code == int(page["exit_code"]) == 0

    # 2. Workers run while every Spotler write fails: the sync cannot finish, the page renders meanwhile.
    stack.spotler("PUT", "faults", json={"error_rate": 1.0, "error_status": 500})
    stack.start("spotler-worker-1", "work", "--queue", "spotler", "--threads", "2")
    wait_until(lambda: queue_status(redis_client, "spotler", dead_letters=0).delayed > 0, timeout_s=120)
    during = read_metrics(dump_dom(chromium, page_url))
    assert {f"queue.spotler.{k}" for k in ("ready", "delayed", "in_flight")} <= set(during)
    assert sum(int(during[f"queue.spotler.{k}"]) for k in ("ready", "delayed", "in_flight")) > 0
    # Every figure shown before is still there (new ones, e.g. counters, may have appeared).
    assert set(expected_metrics(report)) - set(during) == set()
    stack.spotler("PUT", "faults", json={})

    # 3. Settled: everything written but the refused duplicates, which are dead letters.
    wait_until(lambda: outstanding(redis_client, "spotler") + outstanding(redis_client, "afas") == 0,
               timeout_s=300, interval_s=0.2)
    page = read_metrics(dump_dom(chromium, page_url))
    code, report = cli_report(stack)
    assert_same_moment(page, report)
    assert int(page["dead_letters.total"]) > 0
    assert int(page["counter.spotler_written"]) > 0
    assert page["alert.dead_letters.spotler"].startswith("queue spotler:")
    assert code == int(page["exit_code"]) == 2

    shot = screenshot(chromium, page_url, tmp_path / "status-page.png")
    assert png_size(shot) == (1280, 900)
    target = os.environ.get("STATUS_PAGE_SCREENSHOT")
    if target:
        Path(target).write_bytes(shot.read_bytes())
