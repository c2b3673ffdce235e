"""The consent trail's store: by contact, by time, its retention, blocked flips; and ``connector consent``."""

from __future__ import annotations

import csv
import io
import json

import msgspec
import pytest
import redis
from click.testing import CliRunner

from connector.cli.consent import COLUMNS, consent
from connector.cli.context import AppContext
from connector.settings import Settings
from connector.state.consent import ConsentRecord, ConsentTrail, consent_key

DAY_MS = 86_400_000
NOW_MS = 1_800_000_000_000  # 2027-01-15
NOW = NOW_MS / 1000


def record(cid: str, applied_at: int, **extra: object) -> ConsentRecord:
    fields: dict[str, object] = {"kind": "permission", "field": "permissions.1", "bit": 1, "new": False,
                                 "old": True, "source": "spotler", "target": "afas", "result": "written",
                                 "source_stamp": applied_at - 1500}
    fields.update(extra)
    return ConsentRecord(contact_id=cid, applied_at=applied_at, **fields)  # type: ignore[arg-type]


def test_a_contact_s_timeline_and_the_export_are_ordered_by_when_applied(redis_client: redis.Redis) -> None:
    trail = ConsentTrail(redis_client)
    trail.record([record("2", NOW_MS - 3000), record("1", NOW_MS - 2000, new=True, old=False),
                  record("1", NOW_MS - 5000)])
    trail.record([record("3", NOW_MS - 1000, kind="hard_bounce", field="bounce", bit=None, old=None, new=True)])

    assert [r.applied_at for r in trail.timeline("1", now=NOW)] == [NOW_MS - 5000, NOW_MS - 2000]
    assert [(r.contact_id, r.applied_at) for r in trail.since(NOW_MS - 3000, now=NOW)] == [
        ("2", NOW_MS - 3000), ("1", NOW_MS - 2000), ("3", NOW_MS - 1000)]
    assert trail.since(NOW_MS, now=NOW) == []


def test_records_past_the_retention_are_hidden_then_dropped(redis_client: redis.Redis) -> None:
    trail = ConsentTrail(redis_client, retention_s=730 * 86400)
    trail.record([record("1", NOW_MS - 731 * DAY_MS), record("1", NOW_MS - 400 * DAY_MS),
                  record("2", NOW_MS - 800 * DAY_MS)])
    # Not swept yet: still not shown.
    assert [r.applied_at for r in trail.timeline("1", now=NOW)] == [NOW_MS - 400 * DAY_MS]
    assert [r.contact_id for r in trail.since(0, now=NOW)] == ["1"]

    assert trail.expire(NOW) == 2
    assert redis_client.zcard(consent_key("1")) == 1
    assert redis_client.exists(consent_key("2")) == 0
    assert trail.expire(NOW) == 0
    # A year later the remaining record goes too: the contact's oldest time was moved on.
    assert trail.expire(NOW + 400 * 86400) == 1
    assert redis_client.exists(consent_key("1")) == 0
    assert trail.since(0, now=NOW) == []


def test_a_blocked_flag_flips_once_each_way(redis_client: redis.Redis) -> None:
    trail = ConsentTrail(redis_client)
    assert trail.blocked_flips([("1", True), ("2", False)]) == {"1": True}
    assert trail.blocked_flips([("1", True)]) == {}
    assert trail.blocked_flips([("1", False), ("2", False)]) == {"1": False}
    assert trail.erase(["1"]) == 0


def run(redis_url: str, *args: str, retention_days: str = "730") -> tuple[int, str]:
    settings = Settings.from_env({"REDIS_URL": redis_url, "CONSENT_RETENTION_DAYS": retention_days})
    result = CliRunner().invoke(consent, list(args), obj=AppContext(settings=settings))
    return result.exit_code, result.output


@pytest.fixture
def recent_ms() -> int:
    """An hour before now: inside the retention of the CLI's trail."""
    import time

    return int(time.time() * 1000) - 3_600_000


def test_consent_contact_shows_the_timeline_as_text_and_json(
    redis_client: redis.Redis, redis_url: str, recent_ms: int,
) -> None:
    ConsentTrail(redis_client).record([
        record("42", recent_ms),
        record("42", recent_ms + 1000, kind="blocked", field="blocked", bit=None, old=False, new=True,
               source="afas", target="spotler", result="written"),
    ])
    code, out = run(redis_url, "42")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "contact 42: 2 consent record(s)"
    assert "permission  permissions.1    yes -> no" in lines[1]
    assert "from spotler (" in lines[1]
    assert "to afas: written" in lines[1]
    assert "blocked     blocked           no -> yes" in lines[2]

    code, out = run(redis_url, "42", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [tuple(r) for r in rows] == [COLUMNS, COLUMNS]
    assert (rows[0]["applied_at"], rows[0]["source_stamp"], rows[1]["kind"]) == (recent_ms, recent_ms - 1500,
                                                                                 "blocked")
    assert run(redis_url, "43")[1].startswith("no consent records for contact 43 (kept 730 days")


def test_consent_export_writes_csv_with_its_header_and_json(
    redis_client: redis.Redis, redis_url: str, recent_ms: int,
) -> None:
    code, out = run(redis_url, "export", "--since", "2020-01-01")
    assert (code, out) == (0, ",".join(COLUMNS) + "\n")
    ConsentTrail(redis_client).record([
        record("7", recent_ms),
        record("8", recent_ms + 5, kind="hard_bounce", field="bounce", bit=None, old=None, new=True,
               source_stamp=0),
    ])
    code, out = run(redis_url, "export", "--since", "2020-01-01")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["contact_id"], r["kind"], r["bit"], r["old"], r["new"], r["result"]) for r in rows] == [
        ("7", "permission", "1", "true", "false", "written"), ("8", "hard_bounce", "", "", "true", "written")]
    assert rows[0]["source_stamp"] == str(recent_ms - 1500)
    assert rows[0]["applied_time"].endswith("Z")
    code, out = run(redis_url, "export", "--since", "2020-01-01", "--format", "json")
    assert [r["contact_id"] for r in json.loads(out)] == ["7", "8"]
    # A shorter retention hides the records at once, sweep or not.
    assert run(redis_url, "export", "--since", "2020-01-01", retention_days="0")[1] == ",".join(COLUMNS) + "\n"


def test_consent_export_refuses_a_date_it_cannot_read(redis_url: str) -> None:
    code, out = run(redis_url, "export", "--since", "last tuesday")
    assert code == 2
    assert "is no date" in out


def test_consent_output_goes_through_the_redaction_policy(
    redis_client: redis.Redis, redis_url: str, recent_ms: int,
) -> None:
    # An id that is an e-mail address (a misconfigured key) is masked like everywhere else.
    ConsentTrail(redis_client).record([record("jan@voorbeeld.nl", recent_ms)])
    for args in (["jan@voorbeeld.nl"], ["export", "--since", "2020-01-01"]):
        code, out = run(redis_url, *args)
        assert code == 0
        assert "voorbeeld.nl" not in out
        assert "<email>" in out


def test_records_are_packed_small_and_records_stored_as_json_are_still_read(redis_client: redis.Redis) -> None:
    trail = ConsentTrail(redis_client)
    newest = record("1", NOW_MS, kind="hard_bounce", field="bounce", bit=None, old=None, new=True)
    trail.record([record("1", NOW_MS - 2000), newest])
    members = redis_client.zrange(consent_key("1"), 0, -1)
    assert max(len(m) for m in members) < 64  # zset-max-listpack-value: the trail stays a compact listpack
    assert redis_client.object("encoding", consent_key("1")) in (b"listpack", b"ziplist")
    old = record("1", NOW_MS - 5000, field="permissions.9", bit=3)  # a field its bit does not imply: kept
    redis_client.zadd(consent_key("1"), {msgspec.json.encode(old): old.applied_at})
    assert trail.timeline("1", now=NOW) == [old, record("1", NOW_MS - 2000), newest]
    assert trail.since(NOW_MS - 10_000, now=NOW) == [old, record("1", NOW_MS - 2000), newest]
