"""Doctor's sample pages by key, as the producer reads: the sandbox never sees a skip above 0."""

from __future__ import annotations

import httpx
from tests.doctor.systems import CONTACTS, GETCONNECTOR, Systems

from connector.clients.afas import AfasClient, page_size_for
from connector.doctor.sample import sample_rows
from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.testing import auth_header
from connector.schemas.mapping import load_mapping

ROUTE = f"GET /connectors/{GETCONNECTOR}"
MAPPING = load_mapping(None)


def skips_asked(control: httpx.Client) -> list[int | None]:
    log = control.get("/requests/log").json()
    return [r["skip"] for r in log if r["route"] == ROUTE]


def all_ids(systems: Systems) -> list[int]:
    with httpx.Client(base_url=f"{systems.afas_url}/ProfitRestServices", headers=auth_header()) as api:
        rows = api.get(f"/connectors/{GETCONNECTOR}", params={"skip": -1, "take": -1, "orderbyfieldids": "ContactId"})
        return [row["ContactId"] for row in rows.json()["rows"]]


def test_a_sample_of_several_pages_asks_contact_id_above_the_last_at_skip_0(systems: Systems) -> None:
    columns = 150_000 // 10  # AFAS's sizing rule then allows 10 rows a page
    assert page_size_for(columns) == 10
    expected = all_ids(systems)[:45]
    systems.afas.delete("/requests")

    with AfasClient(f"{systems.afas_url}/ProfitRestServices", DEFAULT_TOKEN) as client:
        rows = list(sample_rows(client, GETCONNECTOR, MAPPING, 45, columns))

    assert [row["ContactId"] for row in rows] == expected  # the first 45 in ContactId order, none twice
    assert skips_asked(systems.afas) == [0] * 5  # 10, 10, 10, 10 and the last 5


def test_the_doctor_command_samples_at_skip_0(systems: Systems) -> None:
    systems.afas.delete("/requests")
    outcome = systems.check("--sample", str(CONTACTS))
    assert outcome.checks["sample rows"]["detail"] == f"{CONTACTS} rows sampled, all usable"
    asked = skips_asked(systems.afas)
    assert asked
    assert set(asked) == {0}
