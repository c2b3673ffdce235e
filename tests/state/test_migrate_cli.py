"""``connector migrate`` through click's CliRunner, on real Redis: counts only, a second run does nothing."""

from __future__ import annotations

import json

import msgspec
import redis
from click.testing import CliRunner

from connector.cli.context import AppContext
from connector.cli.migrate import migrate
from connector.settings import Settings
from connector.state import keys
from connector.state.agreed import AgreedStore, ContactState, FieldState


def invoke(redis_url: str, *args: str) -> tuple[int, str]:
    settings = Settings.from_env({"REDIS_URL": redis_url})
    result = CliRunner().invoke(migrate, list(args), obj=AppContext(settings=settings))
    return result.exit_code, result.output


def test_migrate_reports_counts_and_is_idempotent(redis_url: str, redis_client: redis.Redis) -> None:
    for n in range(3):
        state = ContactState(f={"email": FieldState(f"geheim{n}@voorbeeld.nl", 1000, "s")}, p=f"P{n}")
        redis_client.set(keys.agreed(str(n)), msgspec.json.encode(state))

    code, out = invoke(redis_url, "--dry-run")
    assert (code, out.split(" (")[0]) == (0, "3 key(s) of the old form")
    assert redis_client.exists(*(keys.agreed(str(n)) for n in range(3))) == 3

    code, out = invoke(redis_url)
    assert code == 0
    assert out.startswith("migrated 3 agreed state(s) to the packed layout in 1 pass(es)")
    assert "geheim" not in out
    assert redis_client.exists(*(keys.agreed(str(n)) for n in range(3))) == 0
    assert AgreedStore(redis_client).get("2") == {"email": "geheim2@voorbeeld.nl"}

    code, out = invoke(redis_url, "--json")
    assert code == 0
    assert json.loads(out) == {"migrated": 0, "retired": 0, "forgotten": 0, "vanished": 0, "passes": 0,
                                "left": 0, "dry_run": False}
