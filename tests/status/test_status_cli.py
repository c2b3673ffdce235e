"""``connector status`` and ``connector runs`` through click's CliRunner, against real Redis."""

from __future__ import annotations

import json
import time
from typing import Any

import click
import msgspec
import pytest
import redis
from click.testing import CliRunner

from connector.cli.context import AppContext
from connector.cli.status import runs, status
from connector.schemas.runs import PollResult
from connector.settings import Settings
from connector.state.runs import RunHistory
from connector.status.report import StatusReport
from connector.workers.dead_letters import DeadLetter, DeadLetterStore


def invoke(command: click.Command, *args: str, **env: str) -> tuple[int, str]:
    import os

    settings = Settings.from_env({"REDIS_URL": os.environ["REDIS_URL"], **env})
    result = CliRunner().invoke(command, list(args), obj=AppContext(settings=settings), catch_exceptions=False)
    return result.exit_code, result.output


def record(client: redis.Redis, source: str, age_s: float, run_id: str, **counts: Any) -> None:
    RunHistory(client).record(PollResult(run_id=run_id, source=source, started_at=time.time() - age_s,
                                         duration_s=1.5, **counts))


def dead_letter(client: redis.Redis) -> None:
    DeadLetterStore(client).add(DeadLetter(
        id="d1", queue="spotler", actor="upsert_batch", message={}, reason="fatal", error_class="RecordRejected",
        error="invalid", attempts=1, failed_at=time.time(), entity_key="contact:12",
    ))


def test_exit_0_when_both_producers_polled_recently_and_no_dead_letters(redis_client: redis.Redis) -> None:
    record(redis_client, "afas", 10, "a1", read=500, changed=3)
    record(redis_client, "spotler", 20, "s1", read=2)
    code, out = invoke(status)
    assert code == 0, out
    assert "status: ok" in out
    assert "ALERT" not in out
    assert "spotler" in out
    assert "afas" in out


def test_exit_3_and_says_which_producer_never_polled(redis_client: redis.Redis) -> None:
    record(redis_client, "afas", 10, "a1")
    code, out = invoke(status)
    assert code == 3
    assert "ALERT (exit 3): producer spotler: no successful poll recorded" in out
    assert "producer afas" not in out


def test_exit_3_when_a_producer_lags_beyond_status_max_lag_s(redis_client: redis.Redis) -> None:
    record(redis_client, "afas", 10, "a1")
    record(redis_client, "spotler", 200, "s1")
    assert invoke(status, STATUS_MAX_LAG_S="500")[0] == 0
    code, out = invoke(status, STATUS_MAX_LAG_S="100")
    assert code == 3
    assert "ALERT (exit 3): producer spotler: last successful poll ended" in out
    assert "(limit 100s)" in out


def test_exit_2_on_dead_letters_and_3_wins_when_both(redis_client: redis.Redis) -> None:
    record(redis_client, "afas", 10, "a1")
    record(redis_client, "spotler", 10, "s1")
    dead_letter(redis_client)
    code, out = invoke(status)
    assert code == 2
    assert "ALERT (exit 2): queue spotler: 1 dead letter(s)" in out
    redis_client.delete("connector:last_poll:spotler")
    code, out = invoke(status)
    assert code == 3
    assert "ALERT (exit 2)" in out
    assert "ALERT (exit 3)" in out


def test_json_is_the_report_and_keeps_the_exit_status(redis_client: redis.Redis) -> None:
    record(redis_client, "afas", 10, "a1", read=9)
    dead_letter(redis_client)
    code, out = invoke(status, "--json")
    assert code == 3  # spotler never polled
    report = msgspec.json.decode(out, type=StatusReport)
    assert report.exit_code == 3
    assert report.runs["afas"][0].read == 9
    assert report.dead_letters.by_queue == {"spotler": 1}
    assert {a.kind for a in report.alerts} == {"dead_letters", "never_polled"}


def test_redis_unavailable_is_a_clear_error() -> None:
    code, out = invoke(status, REDIS_URL="unix:///nonexistent/redis.sock")
    assert code == 1
    assert "Redis is unavailable" in out


@pytest.fixture
def history(redis_client: redis.Redis) -> None:
    record(redis_client, "afas", 300, "a-old", read=1000, changed=1000, enqueued_messages=10)
    record(redis_client, "spotler", 200, "s-mid", read=4, changed=1, enqueued_messages=1)
    record(redis_client, "afas", 100, "a-new", read=20, changed=2, unchanged=17, rejected=1, enqueued_messages=1)
    # The workers wrote one of a-new's two changes; the other's field had been overtaken.
    redis_client.hset("connector:run:a-new:outcome", mapping={"written": 1, "superseded": 1})


@pytest.mark.usefixtures("history")
def test_runs_table_newest_first() -> None:
    code, out = invoke(runs)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["source", "run", "started", "kind", "read", "changed", "unchanged", "rejected",
                                "enqueued", "written", "superseded", "duration"]
    assert [line.split()[1] for line in lines[1:]] == ["a-new", "s-mid", "a-old"]
    assert lines[1].split()[-8:] == ["20", "2", "17", "1", "1", "1", "1", "1.50s"]


@pytest.mark.usefixtures("history")
def test_runs_source_limit_and_json() -> None:
    code, out = invoke(runs, "--source", "afas", "--json")
    assert code == 0
    found = [(r["run_id"], r["read"], r["superseded"]) for r in json.loads(out)]
    assert found == [("a-new", 20, 1), ("a-old", 1000, 0)]
    code, out = invoke(runs, "--limit", "1", "--json")
    assert [r["run_id"] for r in json.loads(out)] == ["a-new"]
    assert invoke(runs, "--source", "nope")[0] == 2


def test_runs_empty(redis_client: redis.Redis) -> None:
    assert invoke(runs) == (0, "no runs recorded\n")
