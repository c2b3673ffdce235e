"""``connector forget`` through click's CliRunner: real Redis, the AFAS sandbox over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner

from connector.cli.context import AppContext
from connector.cli.forget import forget
from connector.clients.afas import AfasClient
from connector.sandbox.afas.app import DEFAULT_TOKEN, create_app
from connector.sandbox.server import BackgroundServer
from connector.schemas.events import FieldWrite
from connector.state.agreed import AgreedStore
from connector.state.ordering import CommitItem, ContactWrite, Ordering
from connector.state.rejections import RejectionStore
from connector.state.tombstones import Tombstones
from connector.sync.rows import Rejection

GONE = "900001"  # synced once, no longer in the GetConnector


@pytest.fixture
def afas_url() -> Iterator[str]:
    with BackgroundServer(create_app(contacts=20, seed=3, token=DEFAULT_TOKEN)) as server:
        yield f"{server.url}/ProfitRestServices"


@pytest.fixture
def listed(afas_url: str) -> str:
    with AfasClient(afas_url, DEFAULT_TOKEN) as client:
        return str(next(client.iter_pages("Spotler_Contacts", key="ContactId", page_size=5))[0]["ContactId"])


def synced(client: redis.Redis, *cids: str) -> None:
    Ordering(client).commit("spotler", "", [CommitItem(write=ContactWrite(
        contact_id=cid, fields=[FieldWrite("email", f"p{cid}@voorbeeld.nl", 10, 0)])) for cid in cids])


def invoke(afas_url: str, redis_url: str, *args: str, input: str | None = None) -> tuple[int, str]:
    from connector.settings import Settings

    settings = Settings.from_env({"AFAS_BASE_URL": afas_url, "AFAS_TOKEN": DEFAULT_TOKEN, "REDIS_URL": redis_url})
    result = CliRunner().invoke(forget, list(args), input=input, obj=AppContext(settings=settings))
    return result.exit_code, result.output


def test_a_contact_afas_still_lists_is_refused_and_force_forgets_it(
    afas_url: str, redis_url: str, redis_client: redis.Redis, listed: str
) -> None:
    synced(redis_client, listed, GONE)
    code, out = invoke(afas_url, redis_url, listed, GONE, "--yes")
    assert code == 1
    assert f"AFAS still lists contact(s) {listed}: erase them in AFAS first" in out
    assert "nothing was erased" in out
    assert AgreedStore(redis_client).get_many([listed, GONE]) == [{"email": f"p{listed}@voorbeeld.nl"},
                                                                 {"email": f"p{GONE}@voorbeeld.nl"}]
    assert Tombstones(redis_client).count() == 0

    code, out = invoke(afas_url, redis_url, listed, "--force", "--yes")
    assert code == 0, out
    assert "forgot 1 contact(s): 1 agreed state(s)" in out
    assert "anonymize them there" in out
    assert AgreedStore(redis_client).state(listed) is None
    assert Tombstones(redis_client).which([listed, GONE]) == {listed}


def test_forget_asks_first_and_reports_as_json(
    afas_url: str, redis_url: str, redis_client: redis.Redis
) -> None:
    synced(redis_client, GONE)
    RejectionStore(redis_client).add_many([Rejection(contact_id=GONE, field="Email", reason="x")])
    code, out = invoke(afas_url, redis_url, GONE, input="n\n")
    assert code == 1
    assert f"Forget 1 contact(s) ({GONE})" in out
    assert AgreedStore(redis_client).state(GONE) is not None

    code, out = invoke(afas_url, redis_url, GONE, "--yes", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert {k: v for k, v in report.items() if k != "forgotten_at"} == {
        "contacts": [GONE], "agreed_state": 1, "rejections": 1, "conflicts": 0, "dead_letters": 0,
        "bounce_markers": 0, "departed": 0, "consent_records": 0, "journal": 1,
    }
    assert "voorbeeld.nl" not in out
    assert AgreedStore(redis_client).state(GONE) is None
    assert RejectionStore(redis_client).count() == 0
