"""The contact lookup in headless Chromium on a running link, compared with ``connector trace --json``.

A person's way through it: open the status page, sign in with the form, type
a ContactId into the lookup form and press Enter. The page Chromium then
shows must say what a separate ``connector trace CONTACT_ID --json`` process
says at the same moment: the verdict, every timeline line, every field row.
The producers are stopped before each comparison, so nothing moves between
the two reads; both read AFAS and Spotler live.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from tests.e2e.test_nothing_lost import make_stack, plain, settle, start_link
from tests.e2e.test_trace import trace
from tests.web.chromium import Browser, ensure_chromium, read_metrics
from tests.web.test_web_page_chromium import start_web

from connector.stack import Stack

# The first run may install Chromium with apt-get (ensure_chromium), which can take minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

__all__ = ["make_stack"]

TOKEN = "lookup-page-token"


def as_shown(cli: dict[str, Any]) -> dict[str, str]:
    """What the page must show for a ``connector trace --json`` answer, by ``data-metric`` name."""
    shown = {"trace.verdict": cli["verdict"], "trace.contact_id": cli["contact_id"],
             "trace.afas": cli["afas"], "trace.spotler": cli["spotler"]}
    for n, step in enumerate(cli["timeline"]):
        shown |= {f"trace.step.{n}.at": step["at"], f"trace.step.{n}.text": step["text"]}
    for row in cli["fields"]:
        p = f"trace.field.{row['field']}"
        shown |= {f"{p}.{side}": row[side] or "" for side in ("agreed", "afas", "spotler")}
        shown[f"{p}.same"] = "true" if row["same"] else "false"
    shown |= {f"trace.pending.{into}": ", ".join(fields) for into, fields in cli["pending"].items()}
    shown |= {f"trace.queued.{q}": str(n) for q, n in cli["queued"].items()}
    shown |= {f"trace.dead_letter.{i}": d for i, d in enumerate(cli["dead_letters"])}
    shown |= {f"trace.rejection.{i}": r for i, r in enumerate(cli["rejections"])}
    return shown


def look_up(browser: Browser, base: str, cid: str) -> str:
    """From the status page, through the lookup form: the trace page's DOM."""
    browser.open(f"{base}/")  # a fresh page: its next reload is seconds away
    browser.type_and_enter("#contact", cid, lands_on="/trace")
    return browser.dom()


def test_the_lookup_in_chromium_shows_what_connector_trace_says(
    make_stack: Callable[..., Stack], redis_client: redis.Redis
) -> None:
    chromium = ensure_chromium()
    stack = make_stack(30, seed=52, STATUS_TOKEN=TOKEN)
    start_link(stack)
    settle(stack, redis_client, cycles=2)
    cid = plain(stack.afas_records()[0])[0]
    base = start_web(stack)

    with Browser(chromium) as browser:
        browser.open(f"{base}/")
        assert 'action="/signin"' in browser.dom()  # not signed in: the sign-in form
        browser.type_and_enter("#token", TOKEN, lands_on="/")
        assert 'data-metric="exit_code"' in browser.dom()

        # 1. Synced and still: in step, and every line of its story as connector trace tells it.
        for source in ("afas", "spotler"):
            stack.processes[f"{source}-producer"].stop()
        dom = look_up(browser, base, cid)
        cli = trace(stack, cid)
        assert cli["verdict"] == "in step", cli
        assert cli["timeline"]
        assert cli["fields"]
        assert read_metrics(dom) == as_shown(cli)
        assert browser.url() == f"{base}/trace?contact={cid}"
        assert '<div class="verdict ok">' in dom

        # 2. Spotler edited while nobody polls: it differs from the agreed state, the row is marked.
        stack.spotler("POST", "edit", json={"externalId": cid, "properties": {"lastName": "Opzoeker-Spotler"}})
        dom = look_up(browser, base, cid)
        cli = trace(stack, cid)
        assert cli["verdict"].startswith("differs: lastName"), cli
        shown = read_metrics(dom)
        assert shown == as_shown(cli)
        assert shown["trace.field.lastName.same"] == "false"
        assert shown["trace.field.lastName.afas"] == shown["trace.field.lastName.agreed"]
        assert shown["trace.field.lastName.spotler"] != shown["trace.field.lastName.agreed"]
        marked = '<span data-metric="trace.field.lastName.same" data-value="false" class="badge bad">differs</span>'
        assert marked in dom

        # 3. The Spotler producer picks the edit up and the link settles: in step again, one more story told.
        stack.start("spotler-producer", "produce", "spotler")
        stack.start("afas-producer", "produce", "afas")
        settle(stack, redis_client)
        for source in ("afas", "spotler"):
            stack.processes[f"{source}-producer"].stop()
        dom = look_up(browser, base, cid)
        cli = trace(stack, cid)
        assert cli["verdict"] == "in step", cli
        assert read_metrics(dom) == as_shown(cli)
        assert any("change seen in Spotler (lastName)" in s["text"] for s in cli["timeline"])

    # The JSON route answers what connector trace --json does; no value and no token anywhere.
    data = httpx.get(f"{base}/trace.json", params={"contact": cid}, headers={"Authorization": f"Bearer {TOKEN}"},
                     timeout=60)
    assert data.json() == cli
    for text in (dom, data.text, json.dumps(cli)):
        assert "Opzoeker" not in text
        assert TOKEN not in text
