"""The web app over real HTTP (uvicorn on a free port) against real Redis."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.web.chromium import read_metrics
from tests.web.page_metrics import assert_same_moment

from connector.sandbox.server import BackgroundServer
from connector.schemas.runs import PollResult
from connector.settings import Settings
from connector.stack import RedisServer
from connector.state import keys
from connector.state.conflicts import ConflictStore
from connector.state.rejections import RejectionStore
from connector.state.runs import RunHistory
from connector.status.report import StatusReport
from connector.sync.merge import Conflict
from connector.sync.rows import Rejection
from connector.web.app import create_app, web_redis_client
from connector.workers.dead_letters import DeadLetter, DeadLetterStore

TOKEN = "s3cret-status-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
EMAIL = "pieter.bakker@example.com"

Serve = Callable[..., str]


@pytest.fixture
def serve(redis_client: redis.Redis) -> Iterator[Serve]:
    """Start the app for some settings on a free port; returns its base URL."""
    servers: list[BackgroundServer] = []

    def start(token: str | None = TOKEN, client: redis.Redis | None = None) -> str:
        env = {"REDIS_URL": os.environ["REDIS_URL"], **({"STATUS_TOKEN": token} if token else {})}
        server = BackgroundServer(create_app(Settings.from_env(env), client or redis_client)).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def populated(redis_client: redis.Redis) -> None:
    now = time.time()
    for n, source in enumerate(("afas", "spotler", "afas")):
        RunHistory(redis_client).record(PollResult(run_id=f"run{n}", source=source, started_at=now - 100 + n,
                                                   duration_s=0.5, read=10 * n, changed=n))
    RejectionStore(redis_client).add_many([Rejection(contact_id="7", field="Email", reason="<b>invalid</b> & odd")])
    ConflictStore(redis_client).add_many([Conflict(
        contact_id="42", field="email", afas_value=EMAIL, spotler_value="x@example.org", agreed_value=None,
        rule="owner:afas", winner="afas", value=EMAIL)])
    DeadLetterStore(redis_client).add(DeadLetter(
        id="abcdef0123456789", queue="spotler", actor="upsert_batch", message={"kwargs": {"email": EMAIL}},
        reason="fatal", error_class="RecordRejected", error="CONTACT_ALREADY_EXISTS", attempts=1, failed_at=now,
        entity_key="contact:9"))
    redis_client.hincrby(keys.COUNTERS, "spotler_written", 77)


def unreachable() -> redis.Redis:
    return redis.Redis(unix_socket_path="/nonexistent/redis.sock", retry=Retry(NoBackoff(), 0))


def test_healthz_is_open_and_says_ok_and_nothing_else(serve: Serve) -> None:
    for base in (serve(token=None), serve(), serve(client=unreachable())):
        response = httpx.get(f"{base}/healthz")
        assert (response.status_code, response.text) == (200, "ok")


@pytest.mark.parametrize("path", ["/", "/status.json", "/metrics"])
def test_without_status_token_everything_but_healthz_is_403_and_says_why(serve: Serve, path: str) -> None:
    response = httpx.get(f"{serve(token=None)}{path}", params={"token": "anything"})
    assert response.status_code == 403
    assert "STATUS_TOKEN is not set" in response.text


@pytest.mark.parametrize("path", ["/", "/status.json", "/metrics"])
def test_a_missing_or_wrong_token_is_401(serve: Serve, path: str) -> None:
    url = f"{serve()}{path}"
    for kwargs in ({}, {"params": {"token": "wrong"}}, {"headers": {"Authorization": "Bearer wrong"}},
                   {"headers": {"Authorization": f"Basic {TOKEN}"}}, {"params": {"token": TOKEN[:-1]}}):
        response = httpx.get(url, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 401, kwargs
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in response.text


@pytest.mark.parametrize("path", ["/", "/status.json", "/metrics"])
def test_the_token_as_bearer_header(serve: Serve, path: str) -> None:
    response = httpx.get(f"{serve()}{path}", headers=BEARER)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.usefixtures("populated")
def test_status_json_is_the_report(serve: Serve) -> None:
    response = httpx.get(f"{serve()}/status.json", headers=BEARER)
    assert response.headers["content-type"].startswith("application/json")
    report = msgspec.json.decode(response.content, type=StatusReport)
    assert [r.run_id for r in report.runs["afas"]] == ["run2", "run0"]
    assert report.dead_letters.total == 1
    assert report.counters == {"spotler_written": 77}
    assert report.exit_code == 2  # the dead letter; both producers polled just now
    assert EMAIL not in response.text


@pytest.mark.usefixtures("populated")
def test_page_shows_every_figure_of_the_report(serve: Serve) -> None:
    base = serve()
    page = httpx.get(f"{base}/", headers=BEARER)
    report = httpx.get(f"{base}/status.json", headers=BEARER).json()
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert_same_moment(read_metrics(page.text), report)
    html = page.text
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no external assets"
    assert "&lt;b&gt;invalid&lt;/b&gt; &amp; odd" in html  # text is escaped
    assert EMAIL not in html
    assert "x@example.org" not in html


@pytest.mark.usefixtures("populated")
def test_metrics_in_prometheus_text_format(serve: Serve) -> None:
    response = httpx.get(f"{serve()}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in response.text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#"):
            continue
        match = re.fullmatch(r'([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (\S+)', line)
        assert match, line
        assert match.group(1) in typed, f"sample before its TYPE line: {line}"
        samples[f"{match.group(1)}{match.group(2) or ''}"] = float(match.group(3))
    assert samples['connector_queue_messages{queue="spotler",state="ready"}'] == 0
    assert samples['connector_dead_letters{queue="spotler"}'] == 1
    assert samples['connector_counter_total{name="spotler_written"}'] == 77
    assert samples['connector_rejections{reason="<b>invalid</b> & odd"}'] == 1
    assert samples['connector_conflicts{rule="owner:afas"}'] == 1
    assert samples['connector_status_exit_code'] == 2
    assert samples['connector_last_run_records{source="afas",outcome="read"}'] == 20
    assert 97 < samples['connector_producer_lag_seconds{source="afas"}'] < 3600  # ended 97.5s before collect
    assert EMAIL not in response.text


@pytest.mark.parametrize(("path", "kind"), [("/", "text/html"), ("/status.json", "application/json"),
                                            ("/metrics", "text/plain")])
def test_redis_down_is_503_not_a_crash(serve: Serve, path: str, kind: str) -> None:
    response = httpx.get(f"{serve(client=unreachable())}{path}", headers=BEARER)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith(kind)
    assert response.headers["retry-after"] == "5"
    assert "Redis unavailable (ConnectionError)" in (json.loads(response.text)["error"] if kind == "application/json"
                                                     else response.text)


def test_a_redis_restart_is_503_then_the_status_again_with_one_line_each_way(
    serve: Serve, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        base = serve(client=web_redis_client(Settings.from_env({"REDIS_URL": server.url})))
        with caplog.at_level(logging.INFO, logger="connector.web"):
            assert httpx.get(f"{base}/status.json", headers=BEARER).status_code == 200
            server.kill()
            for path in ("/", "/status.json", "/metrics", "/status.json"):
                assert httpx.get(f"{base}{path}", headers=BEARER, timeout=30).status_code == 503
            health = httpx.get(f"{base}/healthz", timeout=30)
            assert (health.status_code, health.text) == (200, "ok")
            server.start()
            assert httpx.get(f"{base}/status.json", headers=BEARER, timeout=30).status_code == 200
    finally:
        server.kill()
    web_lines = [r.getMessage() for r in caplog.records if r.name == "connector.web.app"]
    assert [line.split(" (")[0].split(" after")[0] for line in web_lines] == [
        "web: Redis unavailable", "web: Redis is back"]
