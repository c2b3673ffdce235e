"""``connector testplan`` end to end: both sandboxes, and the link's four processes running (or not)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.e2e.helpers import wait_for_quiet

from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.spotler.app import DEFAULT_SECRET
from connector.stack import Stack

pytestmark = pytest.mark.e2e

BOTH = ("afas", "spotler")
SECRETS = (DEFAULT_TOKEN, DEFAULT_TOKEN.split("<data>")[1].split("<")[0], DEFAULT_SECRET, "@example.com")


@pytest.fixture
def stack(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Stack]:
    with Stack(tmp_path, redis_url=redis_url, contacts=100, seed=11, env={"POLL_INTERVAL_S": "1"}) as s:
        s.start_sandboxes()
        yield s


def run_plan(stack: Stack, report: Path, timeout_s: float) -> tuple[int | None, str, str]:
    proc = stack.start("testplan", "testplan", "--report", str(report), "--timeout", str(timeout_s))
    code = proc.wait(300)
    return code, proc.output(), report.read_text()


def ids(report: str) -> tuple[str, str]:
    found = re.search(r"organisation (\d+) '.*' with person \d+, contact (\d+)", report)
    assert found, report
    return found.group(1), found.group(2)


def test_the_plan_passes_while_the_link_runs_and_cleans_up(
    stack: Stack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    for queue in BOTH:
        stack.start(f"{queue}-worker", "work", "--queue", queue, "--threads", "2")
    for source in BOTH:
        stack.start(f"{source}-producer", "produce", source)
    wait_for_quiet(stack, redis_client, sources=BOTH)

    code, output, report = run_plan(stack, tmp_path / "reports" / "plan.md", timeout_s=60)

    assert code == 0, output
    assert report.startswith("# Test plan report: PASS")
    assert report.count("| pass |") == 5
    for secret in SECRETS:
        assert secret not in output
        assert secret not in report
    org, contact = ids(report)
    assert stack.afas("GET", f"organisations/{org}")["fields"]["Nm"].endswith("(removed)")
    assert stack.afas("GET", f"contacts/{contact}")["Blocked"] is True
    assert "email" not in stack.spotler("GET", f"contacts/{contact}")["properties"]


def test_without_the_link_running_the_first_step_fails_and_says_why(stack: Stack, tmp_path: Path) -> None:
    code, output, report = run_plan(stack, tmp_path / "plan.md", timeout_s=2)

    assert code == 1, output
    assert report.startswith("# Test plan report: FAIL")
    outcomes = re.findall(r"^\| (\d) \| .* \| (\w+) \| [\d.]+ s \|$", report, flags=re.MULTILINE)
    assert outcomes == [("1", "fail"), ("2", "skip"), ("3", "skip"), ("4", "skip"), ("5", "pass")]
    assert "does not start them" in output
    assert "no afas-producer (connector produce afas) is running" in output
    # What step 1 created is cleaned up all the same.
    org, contact = ids(report)
    assert stack.afas("GET", f"contacts/{contact}")["Blocked"] is True
    assert stack.afas("GET", f"organisations/{org}")["fields"]["Nm"].endswith("(removed)")
