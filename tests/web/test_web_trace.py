"""The contact lookup over real HTTP against real Redis: /trace and /trace.json, their auth, input and live reads."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator

import httpx
import msgspec
import pytest
import redis
from tests.web.chromium import read_metrics
from tests.web.test_web_app import unreachable

from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.app import create_app as afas_app
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET
from connector.sandbox.spotler.app import create_app as spotler_app
from connector.settings import Secret, Settings
from connector.state import keys
from connector.state.agreed import ContactState, FieldState
from connector.state.journal import Journal, Seen, Wrote
from connector.state.rejections import RejectionStore
from connector.status.trace import Side, as_json, build_trace
from connector.sync.rows import Rejection
from connector.web import auth
from connector.web.app import create_app
from connector.web.lookup import MAX_CONTACT_ID, lookup
from connector.workers.dead_letters import DeadLetter, DeadLetterStore

TOKEN = "lookup-Tok3n-never-shown"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CID = "4711"
EMAIL = "marieke.jansen@example.com"
HOSTILE = '"><script>alert(1)</script>'

Serve = Callable[..., str]


@pytest.fixture
def serve(redis_client: redis.Redis) -> Iterator[Serve]:
    servers: list[BackgroundServer] = []

    def start(token: str | None = TOKEN, client: redis.Redis | None = None, **env: str) -> str:
        given = {"REDIS_URL": os.environ["REDIS_URL"], **({"STATUS_TOKEN": token} if token else {}), **env}
        settings = Settings.from_env(given)
        server = BackgroundServer(create_app(settings, client or redis_client)).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def contact(redis_client: redis.Redis) -> None:
    """A contact with an agreed state (old JSON form), a journal, a dead letter and a rejection naming it."""
    state = ContactState(f={"city": FieldState("Breda", 1000, "s"), "email": FieldState(EMAIL, 1000, "s")})
    redis_client.set(keys.agreed(CID), msgspec.json.encode(state))
    Journal(redis_client).append([(CID, Seen(source="afas", stamp=1000, fields=["city"], decision="to_spotler")),
                                  (CID, Wrote(target="spotler", entity="contact/list", fields=["city"], outcome="ok"))],
                                 now=time.time() - 60)
    DeadLetterStore(redis_client).add(DeadLetter(
        id="d0d0d0d0", queue="spotler", actor="upsert_batch",
        message={"kwargs": {"payload": {"contact_id": CID, "email": EMAIL}}}, reason="fatal",
        error_class="RecordRejected", error="refused", attempts=1, failed_at=time.time()))
    RejectionStore(redis_client).add_many([Rejection(contact_id=CID, field="Email", reason="<b>bad</b> & odd")])


def cookie() -> dict[str, str]:
    return {"Cookie": f"{auth.COOKIE}={auth.cookie_value(Secret(TOKEN), int(time.time()))}"}


@pytest.mark.usefixtures("contact")
def test_the_page_and_the_json_show_the_trace_of_the_contact(serve: Serve, redis_client: redis.Redis) -> None:
    base = serve()
    page = httpx.get(f"{base}/trace", params={"contact": CID}, headers=cookie(), timeout=30)
    data = httpx.get(f"{base}/trace.json", params={"contact": CID}, headers=BEARER, timeout=30)
    assert (page.status_code, data.status_code) == (200, 200)
    assert page.headers["content-type"].startswith("text/html")
    assert data.headers["content-type"].startswith("application/json")
    assert page.headers["cache-control"] == data.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    trace = data.json()
    # Neither side is configured here: both say so, and the rest is shown.
    assert trace["afas"] == "not read: missing setting(s): AFAS_BASE_URL, AFAS_TOKEN"
    assert trace["spotler"].startswith("not read: missing setting(s): SPOTLER_BASE_URL")
    assert trace["verdict"] == ("dead-lettered: d0d0d0d0 (spotler, fatal: RecordRejected); "
                                "replay with connector dlq replay")
    texts = [s["text"] for s in trace["timeline"]]
    assert texts[:3] == ["change seen in AFAS (city): enqueued for Spotler",
                         "write into Spotler contact/list (city), attempt 1: ok",
                         "dead-lettered (fatal) on queue spotler as d0d0d0d0"]
    assert texts[3] == "rejected (afas, field Email): <b>bad</b> & odd"
    assert trace["rejections"] == ["afas field Email: <b>bad</b> & odd"]
    # The JSON is exactly connector trace --json's, for the same state and the same (unread) sides.
    unread = Settings.from_env({"REDIS_URL": os.environ["REDIS_URL"]})
    again = lookup(unread, redis_client, CID)
    assert data.text == as_json(again)
    shown = read_metrics(page.text)
    assert shown["trace.verdict"] == trace["verdict"]
    assert [shown[f"trace.step.{n}.text"] for n in range(len(texts))] == texts
    assert f"trace.step.{len(texts)}.text" not in shown
    assert {r["field"]: r["agreed"] for r in trace["fields"]} == {
        "city": shown["trace.field.city.agreed"], "email": shown["trace.field.email.agreed"]}
    assert shown["trace.field.email.agreed"].startswith("<e-mail ")
    assert "&lt;b&gt;bad&lt;/b&gt; &amp; odd" in page.text
    for response in (page, data):
        assert EMAIL not in response.text
        assert TOKEN not in response.text


def test_a_contact_the_link_does_not_know_is_unknown(serve: Serve) -> None:
    response = httpx.get(f"{serve()}/trace.json", params={"contact": "999"}, headers=BEARER, timeout=30)
    assert response.json()["verdict"] == "unknown to the link: no agreed state"


@pytest.mark.parametrize("path", ["/trace", "/trace.json"])
def test_the_lookup_is_behind_the_token_like_the_status(serve: Serve, path: str) -> None:
    base = serve()
    ways: list[tuple[dict[str, str], dict[str, str]]] = [
        ({}, {}), ({"Authorization": "Bearer wrong"}, {}), ({"Cookie": f"{auth.COOKIE}=1.ab"}, {}),
        ({"Authorization": f"Basic {TOKEN}"}, {}), ({}, {"token": "wrong"})]
    for headers, params in ways:
        response = httpx.get(f"{base}{path}", params={"contact": CID, **params}, headers=headers)
        assert response.status_code == 401, (headers, params)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "data-metric" not in response.text
        assert '"verdict"' not in response.text
    disabled = httpx.get(f"{serve(token=None)}{path}", params={"contact": CID}, headers=BEARER)
    assert disabled.status_code == 403
    assert "STATUS_TOKEN is not set" in disabled.text


def test_a_token_in_the_url_becomes_the_cookie_and_the_lookup_url_keeps_the_contact(serve: Serve) -> None:
    base = serve()
    response = httpx.get(f"{base}/trace", params={"contact": CID, "token": TOKEN})
    assert response.status_code == 303
    assert response.headers["location"] == f"/trace?contact={CID}"
    assert TOKEN not in response.text
    followed = httpx.get(f"{base}{response.headers['location']}", cookies=response.cookies, timeout=30)
    assert followed.status_code == 200
    assert read_metrics(followed.text)["trace.contact_id"] == CID


@pytest.mark.parametrize(("contact", "message"), [
    ("", "Give a contact id (the AFAS ContactId) to look up."),
    ("   ", "Give a contact id (the AFAS ContactId) to look up."),
    ("7" * (MAX_CONTACT_ID + 1), f"A contact id is at most {MAX_CONTACT_ID} characters."),
    ("12\x003", "A contact id holds printable characters only."),
    ("12\n<b>", "A contact id holds printable characters only."),
    (EMAIL, "A contact id is an AFAS ContactId, not an e-mail address or a phone number."),
    ("+31 6 12345678", "A contact id is an AFAS ContactId, not an e-mail address or a phone number."),
])
def test_a_bad_contact_id_is_a_400_that_says_why_without_repeating_it(serve: Serve, contact: str, message: str) -> None:
    base = serve()
    page = httpx.get(f"{base}/trace", params={"contact": contact}, headers=BEARER)
    data = httpx.get(f"{base}/trace.json", params={"contact": contact}, headers=BEARER)
    assert (page.status_code, data.status_code) == (400, 400)
    assert message in page.text
    assert 'action="/trace"' in page.text  # the form again, to try another
    assert data.json() == {"error": message}
    if contact.strip():
        assert contact not in page.text
        assert contact not in data.text


def test_the_token_typed_as_a_contact_id_is_refused_and_not_shown(serve: Serve) -> None:
    base = serve()
    for path in ("/trace", "/trace.json"):
        response = httpx.get(f"{base}{path}", params={"contact": f" {TOKEN} "}, headers=cookie())
        assert response.status_code == 400
        assert "That is the status token, not a contact id." in response.text
        assert TOKEN not in response.text


@pytest.mark.usefixtures("contact")
def test_the_token_is_in_no_lookup_answer_whichever_way_it_is_sent(serve: Serve) -> None:
    base = serve()
    ways: list[tuple[dict[str, str], dict[str, str]]] = [
        ({}, {}), (BEARER, {}), ({"Authorization": "Bearer nope"}, {}), (cookie(), {}),
        ({}, {"token": TOKEN}), ({"X-Forwarded-Proto": "https"}, {"token": TOKEN}), ({}, {"token": "nope"})]
    seen = 0
    for path in ("/trace", "/trace.json"):
        for contact in (None, CID, TOKEN, HOSTILE):
            for headers, params in ways:
                if contact == TOKEN and params.get("token") == TOKEN:
                    continue  # a URL with the token twice: its 303 is to the URL less ?token=, as for any route
                asked = {**({"contact": contact} if contact is not None else {}), **params}
                for method in ("GET", "HEAD"):
                    response = httpx.request(method, f"{base}{path}", params=asked, headers=headers, timeout=30)
                    seen += 1
                    for answer in [response, *([httpx.get(f"{base}{response.headers['location']}",
                                                          cookies=response.cookies, timeout=30)]
                                               if response.status_code == 303 else [])]:
                        assert TOKEN not in answer.text, (path, contact, headers, params)
                        assert all(TOKEN not in value for _, value in answer.headers.multi_items())
    assert seen == 2 * (4 * len(ways) - 2) * 2


def test_without_a_contact_the_page_is_the_form_and_the_json_a_400(serve: Serve) -> None:
    base = serve()
    page = httpx.get(f"{base}/trace", headers=BEARER)
    assert page.status_code == 200
    assert 'name="contact"' in page.text
    assert httpx.get(f"{base}/trace.json", headers=BEARER).status_code == 400


def test_a_hostile_contact_id_is_escaped_everywhere(serve: Serve) -> None:
    response = httpx.get(f"{serve()}/trace", params={"contact": HOSTILE}, headers=BEARER, timeout=30)
    assert response.status_code == 200
    assert "<script" not in response.text
    assert HOSTILE not in response.text
    assert read_metrics(response.text)["trace.contact_id"] == HOSTILE
    data = httpx.get(f"{serve()}/trace.json", params={"contact": HOSTILE}, headers=BEARER, timeout=30)
    assert data.json()["contact_id"] == HOSTILE


@pytest.mark.parametrize("path", ["/trace", "/trace.json"])
def test_redis_down_is_503(serve: Serve, path: str) -> None:
    response = httpx.get(f"{serve(client=unreachable())}{path}", params={"contact": CID}, headers=BEARER)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "Redis unavailable (ConnectionError)" in response.text


def test_a_side_that_does_not_answer_is_shown_as_not_read_and_the_page_still_answers(serve: Serve) -> None:
    with BackgroundServer(afas_app(5, 1, DEFAULT_TOKEN)) as afas, BackgroundServer(spotler_app()) as spotler:
        httpx.put(f"{afas.url}/_sandbox/faults", json={"timeout_rate": 1.0, "timeout_s": 3}).raise_for_status()
        base = serve(AFAS_BASE_URL=f"{afas.url}/ProfitRestServices", AFAS_TOKEN=DEFAULT_TOKEN,
                     SPOTLER_BASE_URL=f"{spotler.url}/integrationservice-1.1.0", SPOTLER_KEY=DEFAULT_KEY,
                     SPOTLER_SECRET=DEFAULT_SECRET, HTTP_TIMEOUT_S="0.5")
        started = time.monotonic()
        response = httpx.get(f"{base}/trace.json", params={"contact": CID}, headers=BEARER, timeout=60)
        took = time.monotonic() - started
        httpx.put(f"{afas.url}/_sandbox/faults", json={}).raise_for_status()
    trace = response.json()
    assert trace["afas"].startswith("not read: AFAS GET"), trace["afas"]
    assert "timed out" in trace["afas"]
    assert trace["spotler"] == "not listed"  # read, and Spotler does not know the contact
    assert took < 5, took  # HTTP_TIMEOUT_S, not the 3 s the sandbox holds the request


def test_a_reader_past_the_deadline_is_left_behind(redis_client: redis.Redis) -> None:
    settings = Settings.from_env({"REDIS_URL": os.environ["REDIS_URL"]})

    def slow(contact_id: str) -> Side:
        time.sleep(1)
        return Side(values={"city": "Breda"})

    def fails(contact_id: str) -> Side:
        raise KeyError(EMAIL)

    started = time.monotonic()
    trace = lookup(settings, redis_client, CID, sides=(slow, fails), deadline_s=0.3)
    assert time.monotonic() - started < 2
    assert trace.afas == "not read: no answer within 0.3s"
    assert trace.spotler == "not read: KeyError"  # the class only: an unknown error's text may hold a value
    read = lookup(settings, redis_client, CID, sides=(slow, slow), deadline_s=10)
    assert (read.afas, read.spotler) == ("read", "read")
    assert read == build_trace(redis_client, CID, afas=slow, spotler=slow, queues=("spotler", "afas"))
    assert EMAIL not in json.dumps(msgspec.to_builtins(trace))
