"""``connector dlq`` against real Redis, through click's CliRunner."""

from __future__ import annotations

import json

import dramatiq
import msgspec
import pytest
import redis
from click.testing import CliRunner

from connector.cli.context import AppContext
from connector.cli.dlq import dlq
from connector.errors import RecordRejected, RetriableError
from connector.redaction import mask_value
from connector.settings import Settings
from connector.workers.dead_letters import DeadLetter, DeadLetterStore, letter_for_message

EMAIL = "klaas.vaak@example.com"


def _letter(n: int, queue: str, failed_at: float) -> DeadLetter:
    message = dramatiq.Message(
        queue_name=queue,
        actor_name="upsert_batch" if queue == "spotler" else "write_contact",
        args=(),
        kwargs={"payload": {"contact_id": str(n), "email": EMAIL}},
        options={"retries": 10},
    )
    error = RetriableError("HTTP 503") if n % 2 else RecordRejected(f"invalid e-mail {EMAIL}")
    letter = letter_for_message(
        message, reason="exhausted" if n % 2 else "fatal", error=error, attempts=11,
        entity_key=f"contact:{n}",
    )
    return msgspec.structs.replace(letter, failed_at=failed_at)


@pytest.fixture
def letters(redis_client: redis.Redis) -> list[DeadLetter]:
    store = DeadLetterStore(redis_client)
    seeded = [_letter(1, "spotler", 1000.0), _letter(2, "afas", 2000.0), _letter(3, "spotler", 3000.0)]
    for letter in seeded:
        store.add(letter)
    return seeded


def _invoke(*args: str, input: str | None = None) -> tuple[int, str]:
    app = AppContext(settings=Settings.from_env())
    result = CliRunner().invoke(dlq, list(args), input=input, obj=app, catch_exceptions=False)
    return result.exit_code, result.output


def test_list_empty(redis_client: redis.Redis) -> None:
    assert _invoke("list") == (0, "0 dead letter(s) (none)\n")


def test_list_table_and_filters(letters: list[DeadLetter]) -> None:
    code, out = _invoke("list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "3 dead letter(s) (afas: 1, spotler: 2)"
    assert lines[1].split() == ["ID", "QUEUE", "ACTOR", "ENTITY", "REASON", "TRIES", "AGE", "LAST", "ERROR"]
    assert [line.split()[3] for line in lines[2:]] == ["contact:3", "contact:2", "contact:1"]
    assert letters[0].id[:8] in out
    assert "RecordRejected: invalid e-mail <email>" in out
    assert EMAIL not in out

    code, out = _invoke("list", "--queue", "afas", "--limit", "5")
    assert [line.split()[3] for line in out.splitlines()[2:]] == ["contact:2"]


def test_list_json(letters: list[DeadLetter]) -> None:
    code, out = _invoke("list", "--json", "--limit", "2")
    assert code == 0
    data = json.loads(out)
    assert [d["entity_key"] for d in data] == ["contact:3", "contact:2"]
    assert data[1]["reason"] == "fatal"
    assert data[1]["attempts"] == 11
    assert "message" not in data[0]
    assert EMAIL not in out


def test_show_by_short_id_masks_the_payload(letters: list[DeadLetter]) -> None:
    code, out = _invoke("show", letters[1].id[:8])
    assert code == 0
    assert f"id:                 {letters[1].id}" in out
    assert f'"email": "{mask_value(EMAIL)}"' in out
    assert EMAIL not in out

    code, out = _invoke("show", letters[1].id, "--json")
    data = json.loads(out)
    assert data["message"]["kwargs"]["payload"] == {"contact_id": "2", "email": mask_value(EMAIL)}

    code, out = _invoke("show", "ffffffff")
    assert code == 1
    assert "no dead letter ffffffff" in out


def test_replay_dry_run_changes_nothing(letters: list[DeadLetter], redis_client: redis.Redis) -> None:
    code, out = _invoke("replay", "--all", "--dry-run")
    assert code == 0
    assert out.startswith("would replay 3 dead letter(s):")
    assert DeadLetterStore(redis_client).count() == 3
    assert not redis_client.exists("dramatiq:spotler.msgs")


def test_replay_asks_first(letters: list[DeadLetter], redis_client: redis.Redis) -> None:
    code, out = _invoke("replay", letters[0].id, input="n\n")
    assert code == 1
    assert "Aborted" in out
    assert DeadLetterStore(redis_client).count() == 3

    code, out = _invoke("replay", letters[0].id, input="y\n")
    assert code == 0
    assert f"replayed {letters[0].id} as message" in out
    store = DeadLetterStore(redis_client)
    assert store.get(letters[0].id) is None
    [raw] = redis_client.hvals("dramatiq:spotler.msgs")
    queued = dramatiq.Message.decode(raw)
    assert (queued.actor_name, queued.kwargs) == ("upsert_batch", letters[0].message["kwargs"])
    assert queued.options["replay_of"] == letters[0].id
    assert "retries" not in queued.options


def test_replay_all_of_one_queue_as_json(letters: list[DeadLetter], redis_client: redis.Redis) -> None:
    code, out = _invoke("replay", "--all", "--queue", "spotler", "--yes", "--json")
    assert code == 0
    data = json.loads(out)
    assert sorted(d["id"] for d in data) == sorted([letters[0].id, letters[2].id])
    assert DeadLetterStore(redis_client).counts() == {"afas": 1}
    assert redis_client.hlen("dramatiq:spotler.msgs") == 2


def test_replay_all_goes_oldest_first(letters: list[DeadLetter], redis_client: redis.Redis) -> None:
    # The newest first would land an older change of a contact last; the ordering check refuses
    # it then too, but oldest first is the order the changes were made in.
    code, out = _invoke("replay", "--all", "--yes", "--json")
    assert code == 0
    assert [d["id"] for d in json.loads(out)] == [letter.id for letter in sorted(letters, key=lambda x: x.failed_at)]
    queued = [dramatiq.Message.decode(redis_client.hget("dramatiq:spotler.msgs", mid))
              for mid in redis_client.lrange("dramatiq:spotler", 0, -1)]
    assert [m.options["replay_of"] for m in queued] == [letters[0].id, letters[2].id]


def test_selection_errors(letters: list[DeadLetter]) -> None:
    assert _invoke("replay")[0] == 2
    assert _invoke("purge", letters[0].id, "--all")[0] == 2
    assert _invoke("purge", letters[0].id, "--queue", "afas")[0] == 2


def test_purge(letters: list[DeadLetter], redis_client: redis.Redis) -> None:
    store = DeadLetterStore(redis_client)
    code, out = _invoke("purge", letters[1].id[:10], "--yes")
    assert (code, out.splitlines()[-1]) == (0, "purged 1 dead letter(s)")
    assert store.get(letters[1].id) is None

    code, out = _invoke("purge", "--all", "--limit", "1", "--yes")
    assert code == 0
    assert store.count() == 1

    code, out = _invoke("purge", "--all", input="y\n")
    assert code == 0
    assert store.count() == 0
    assert not redis_client.exists("dramatiq:spotler.msgs")


PERSONAL = {"firstName": "Zebulonius", "lastName": "Quixwhistle", "phone": "+31 6 48151623",
            "street": "Zwaluwstaartsteeg 7"}


@pytest.fixture
def personal_letter(redis_client: redis.Redis) -> DeadLetter:
    message = dramatiq.Message(queue_name="spotler", actor_name="upsert_batch", args=(),
                               kwargs={"payload": {"contact_id": "7", "changes": dict(PERSONAL)}}, options={})
    letter = letter_for_message(message, reason="fatal", error=RecordRejected("refused"), attempts=1,
                                entity_key="contact:7")
    DeadLetterStore(redis_client).add(letter)
    return letter


def test_names_phones_and_streets_are_masked_in_show_and_list(personal_letter: DeadLetter) -> None:
    outputs = [_invoke(*args)[1] for args in (("show", personal_letter.id), ("show", personal_letter.id, "--json"),
                                              ("list",), ("list", "--json"))]
    for out in outputs:
        assert not [value for value in PERSONAL.values() if value in out]
    data = json.loads(outputs[1])
    assert data["message"]["kwargs"]["payload"]["changes"]["lastName"] == mask_value("Quixwhistle")
    assert data["message"]["kwargs"]["payload"]["contact_id"] == "7"


def test_reveal_asks_first_and_logs_only_the_letter_id(
    personal_letter: DeadLetter, caplog: pytest.LogCaptureFixture
) -> None:
    code, out = _invoke("show", personal_letter.id, "--reveal", input="n\n")
    assert code == 1
    assert "Quixwhistle" not in out
    assert not [r for r in caplog.records if "reveal" in r.getMessage()]

    code, out = _invoke("show", personal_letter.id, "--reveal", input="y\n")
    assert code == 0
    assert "unmasked" in out  # the question
    assert "Quixwhistle" in out
    code, out = _invoke("show", personal_letter.id, "--reveal", "--yes", "--json")
    assert json.loads(out)["message"]["kwargs"]["payload"]["changes"] == PERSONAL

    reveals = [r.getMessage() for r in caplog.records if "reveal" in r.getMessage()]
    assert reveals == [f"dlq show --reveal: dead letter {personal_letter.id} shown unmasked"] * 2
    assert not [r for r in caplog.records if any(v in r.getMessage() for v in PERSONAL.values())]
