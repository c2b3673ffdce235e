"""Time as AFAS keeps it: Amsterdam local wall-clock time with a misleading Z, across DST."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.sandbox.afas.clock import (
    AMSTERDAM,
    LocalTimes,
    SandboxClock,
    format_afas,
    local_from_epoch,
    parse_local,
)
from connector.sandbox.afas.testing import auth_header, running_sandbox


@given(st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000))
def test_bulk_local_times_agree_with_zoneinfo(epoch_ms: int) -> None:
    expected = datetime.fromtimestamp(epoch_ms / 1000, UTC).astimezone(AMSTERDAM).replace(tzinfo=None)
    assert LocalTimes()(epoch_ms) == local_from_epoch(epoch_ms / 1000)
    assert abs(LocalTimes()(epoch_ms) - expected) < timedelta(milliseconds=1)


def test_format_rounds_half_up_to_the_second_and_adds_z() -> None:
    assert format_afas(datetime(2024, 3, 31, 1, 59, 59, 499_000)) == "2024-03-31T01:59:59Z"
    assert format_afas(datetime(2024, 3, 31, 1, 59, 59, 500_000)) == "2024-03-31T02:00:00Z"
    assert format_afas(date(2020, 11, 22)) == "2020-11-22T00:00:00Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-31", datetime(2024, 3, 31)),
        ("2024-03-31T02:30:00", datetime(2024, 3, 31, 2, 30)),
        ("2024-03-31T02:30:00Z", datetime(2024, 3, 31, 2, 30)),
        ("2024-03-31 02:30", datetime(2024, 3, 31, 2, 30)),
        ("2024-10-27T02:30:00.25", datetime(2024, 10, 27, 2, 30, 0, 250_000)),
        ("2024-02-30", None),
        ("31-03-2024", None),
        ("", None),
    ],
)
def test_parse_local(text: str, expected: datetime | None) -> None:
    assert parse_local(text) == expected


def test_clock_modes() -> None:
    clock = SandboxClock()
    assert clock.view().mode == "real"
    clock.set_now(datetime(2024, 10, 27, 0, 30, tzinfo=UTC))
    assert clock.now_local() == datetime(2024, 10, 27, 2, 30)  # still summer time (+02:00)
    assert clock.view().mode == "frozen"
    clock.set_now(datetime(2024, 10, 27, 1, 30, tzinfo=UTC))
    assert clock.now_local() == datetime(2024, 10, 27, 2, 30)  # the repeated hour (+01:00)
    clock.set_offset(-86_400 * 365)
    assert clock.view().mode == "offset"
    assert clock.time() < datetime.now(UTC).timestamp() - 86_400 * 364
    clock.set_real()
    assert clock.view().mode == "real"


class Sandbox:
    def __init__(self, url: str) -> None:
        self.api = httpx.Client(base_url=f"{url}/ProfitRestServices", headers=auth_header(), timeout=30)
        self.control = httpx.Client(base_url=f"{url}/_sandbox", timeout=30)

    def set_clock(self, **body: Any) -> dict[str, Any]:
        response = self.control.post("/clock", json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def edit(self, contact_id: int, **fields: Any) -> None:
        body = {"entity": "contact", "id": contact_id, "fields": fields}
        assert self.control.post("/edit", json=body).status_code == 200

    def modified(self, contact_id: int) -> str:
        params = {"filterfieldids": "ContactId", "filtervalues": str(contact_id), "operatortypes": "1"}
        rows = self.api.get("/connectors/Spotler_Contacts", params=params).json()["rows"]
        return str(rows[0]["ContactModified"])

    def since(self, value: str) -> list[int]:
        params = {
            "skip": -1,
            "take": -1,
            "orderbyfieldids": "ContactModified,ContactId",
            "filterfieldids": "ContactModified",
            "filtervalues": value,
            "operatortypes": "2",
        }
        rows = self.api.get("/connectors/Spotler_Contacts", params=params).json()["rows"]
        return [r["ContactId"] for r in rows]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox(contacts=30, seed=5) as (server, _app):
        client = Sandbox(server.url)
        client.set_clock(now="2024-03-01T12:00:00+01:00")
        # Seed anew under the frozen clock so every seeded date lies before the edits below.
        assert client.control.post("/reset", json={"contacts": 30, "seed": 5}).status_code == 200
        yield client


def test_spring_forward_shows_local_wall_clock_time(sandbox: Sandbox) -> None:
    sandbox.set_clock(now="2024-03-31T01:59:59+01:00")
    sandbox.edit(3, TeNr="1")
    sandbox.set_clock(now="2024-03-31T01:00:01Z")  # one instant later: 03:00:01 summer time
    sandbox.edit(4, TeNr="2")
    assert sandbox.modified(3) == "2024-03-31T01:59:59Z"
    assert sandbox.modified(4) == "2024-03-31T03:00:01Z"
    assert sandbox.since("2024-03-31T02:00:00") == [4]
    assert sandbox.since("2024-03-31T01:59:00Z") == [3, 4]


def test_fall_back_repeats_an_hour(sandbox: Sandbox) -> None:
    sandbox.set_clock(now="2024-10-27T02:40:00+02:00")
    sandbox.edit(5, TeNr="1")
    sandbox.set_clock(now="2024-10-27T02:10:00+01:00")  # 30 minutes later, but earlier on the wall
    sandbox.edit(6, TeNr="2")
    assert sandbox.modified(5) == "2024-10-27T02:40:00Z"
    assert sandbox.modified(6) == "2024-10-27T02:10:00Z"
    # Local-time filters see the later edit as the earlier one: a lookback must cover this.
    assert sandbox.since("2024-10-27T02:30:00") == [5]
    assert sandbox.since("2024-10-27T02:00:00") == [6, 5]
    assert sandbox.since("2024-10-27") == [6, 5]


def test_sub_second_times_are_rounded_in_rows_but_not_in_filters(sandbox: Sandbox) -> None:
    sandbox.set_clock(now="2024-05-01T10:00:01.600+02:00")
    sandbox.edit(7, TeNr="1")
    assert sandbox.modified(7) == "2024-05-01T10:00:02Z"
    assert 7 not in sandbox.since("2024-05-01T10:00:02")  # the stored value is 10:00:01.600
    assert 7 in sandbox.since("2024-05-01T10:00:01")


def test_clock_control(sandbox: Sandbox) -> None:
    view = sandbox.set_clock(now="2024-07-01T08:00:00+02:00")
    assert (view["mode"], view["local"]) == ("frozen", "2024-07-01T08:00:00.000")
    running = sandbox.set_clock(now="2024-07-01T08:00:00+02:00", frozen=False)
    assert running["mode"] == "offset"
    assert sandbox.set_clock(offset_s=-3600)["offset_s"] == -3600
    assert sandbox.set_clock(real=True)["mode"] == "real"
    assert sandbox.control.post("/clock", json={"now": "2024-07-01T08:00:00"}).status_code == 400
    assert sandbox.control.post("/clock", json={}).status_code == 400
    assert sandbox.control.get("/clock").json()["mode"] == "real"
