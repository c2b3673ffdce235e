"""``connector dlq list | show | replay | purge``: the messages the workers gave up on.

Output never shows personal data: errors are stored redacted, and payloads and
entity keys are masked on the way out (``--json`` included) by
``connector.redaction``: e-mail addresses in any spelling, and the values of
personal fields (names, phone numbers, addresses). ``dlq show --reveal`` shows
one letter's payload as stored, after a confirmation, and logs that it did
(the letter's id only).
Before listing, messages Dramatiq dead-lettered on its own (an unknown actor,
an unreachable store) are taken over into the store.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from connector.cli.context import AppContext
from connector.redaction import mask_fields, redact

if TYPE_CHECKING:
    from connector.workers.dead_letters import DeadLetter, DeadLetterStore

__all__ = ["dlq"]

_ERROR_WIDTH = 60

log = logging.getLogger("connector.dlq")


def _store(app: AppContext) -> DeadLetterStore:
    from connector.workers.broker import QUEUES
    from connector.workers.dead_letters import adopt_broker_dead_letters
    from connector.workers.middleware import policy_of

    broker = app.broker
    store = policy_of(broker).store
    adopt_broker_dead_letters(broker, store, set(QUEUES) | broker.get_declared_queues())
    return store


def _summary(letter: DeadLetter, *, with_message: bool = False, reveal: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": letter.id,
        "queue": letter.queue,
        "actor": letter.actor,
        "entity_key": mask_fields(letter.entity_key),
        "reason": letter.reason,
        "attempts": letter.attempts,
        "error_class": letter.error_class,
        "error": mask_fields(letter.error),
        "failed_at": datetime.fromtimestamp(letter.failed_at, UTC).isoformat(),
        "source_message_id": letter.source_message_id,
    }
    if with_message:
        data["message"] = letter.message if reveal else mask_fields(letter.message)
    return data


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


def _table(letters: Iterable[DeadLetter]) -> None:
    now = time.time()
    rows = [
        (
            letter.id[:8], letter.queue, letter.actor, mask_fields(letter.entity_key or "-"), letter.reason,
            str(letter.attempts), _age(now - letter.failed_at),
            mask_fields(f"{letter.error_class}: {letter.error}" if letter.error_class else letter.error),
        )
        for letter in letters
    ]
    header = ("ID", "QUEUE", "ACTOR", "ENTITY", "REASON", "TRIES", "AGE", "LAST ERROR")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        error = row[-1] if len(row[-1]) <= _ERROR_WIDTH else row[-1][: _ERROR_WIDTH - 1] + "…"
        click.echo("  ".join([*cells, error]).rstrip())


def _resolve(store: DeadLetterStore, ids: Iterable[str]) -> list[DeadLetter]:
    letters = []
    for given in ids:
        matches = store.resolve(given)
        if not matches:
            raise click.ClickException(f"no dead letter {given}")
        if len(matches) > 1:
            raise click.ClickException(f"{given} is ambiguous: {len(matches)} dead letters match")
        letter = store.get(matches[0])
        if letter is None:
            raise click.ClickException(f"no dead letter {given}")
        letters.append(letter)
    return letters


def _select(
    store: DeadLetterStore, ids: tuple[str, ...], select_all: bool, queue: str | None, limit: int | None
) -> list[DeadLetter]:
    if bool(ids) == select_all:
        raise click.UsageError("give dead letter ids or --all (not both)")
    if ids and (queue or limit):
        raise click.UsageError("--queue and --limit go with --all")
    if ids:
        return _resolve(store, ids)
    return store.list(queue, limit if limit is not None else store.count(queue))


@click.group()
def dlq() -> None:
    """Dead letters: messages the workers gave up on (list, show, replay, purge)."""


@dlq.command("list")
@click.option("--queue", help="only this queue (spotler, afas)")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table")
@click.pass_obj
def list_letters(app: AppContext, queue: str | None, limit: int, as_json: bool) -> None:
    """The newest dead letters."""
    store = _store(app)
    letters = store.list(queue, limit)
    if as_json:
        click.echo(json.dumps([_summary(letter) for letter in letters], indent=2))
        return
    counts = store.counts()
    per_queue = ", ".join(f"{q}: {n}" for q, n in counts.items()) or "none"
    click.echo(f"{sum(counts.values())} dead letter(s) ({per_queue})")
    if letters:
        _table(letters)


@dlq.command("show")
@click.argument("letter_id")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text")
@click.option("--reveal", is_flag=True, help="show the message unmasked (personal data); asks first, and is logged")
@click.option("--yes", "-y", is_flag=True, help="with --reveal: do not ask for confirmation")
@click.pass_obj
def show(app: AppContext, letter_id: str, as_json: bool, reveal: bool, yes: bool) -> None:
    """One dead letter, with its message (personal data masked unless --reveal)."""
    [letter] = _resolve(_store(app), [letter_id])
    if reveal:
        if not yes:
            click.confirm(f"Show dead letter {letter.id} unmasked, personal data included?", abort=True, err=True)
        log.warning("dlq show --reveal: dead letter %s shown unmasked", letter.id)
    data = _summary(letter, with_message=True, reveal=reveal)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key != "message":
            click.echo(f"{key + ':':<19} {value if value is not None else '-'}")
    click.echo("message:")
    click.echo(json.dumps(data["message"], indent=2))


def _selection_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.argument("ids", nargs=-1),
            click.option("--all", "select_all", is_flag=True, help="every dead letter (see --queue)"),
            click.option("--queue", help="with --all: only this queue"),
            click.option("--limit", type=click.IntRange(min=1), help="with --all: at most this many"),
            click.option("--dry-run", is_flag=True, help="show what would happen, change nothing"),
            click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation"),
            click.option("--json", "as_json", is_flag=True, help="JSON instead of text"),
        ]
    ):
        fn = option(fn)
    return fn


@dlq.command("replay")
@_selection_options
@click.pass_obj
def replay_letters(
    app: AppContext,
    ids: tuple[str, ...], select_all: bool, queue: str | None, limit: int | None,
    dry_run: bool, yes: bool, as_json: bool,
) -> None:
    """Send dead letters through their original actor again (fresh retry count), oldest first.

    A replayed change goes through the same newer-wins check as any other: a
    field that something newer has overtaken since is counted as superseded and
    not written, so replaying an old letter never puts an old value back.
    """
    from connector.workers.dead_letters import replay

    store = _store(app)
    letters = sorted(_select(store, ids, select_all, queue, limit), key=lambda letter: letter.failed_at)
    if _preview("replay", letters, dry_run, yes, as_json):
        return
    broker = app.broker
    results, failed = [], 0
    for letter in letters:
        try:
            message = replay(broker, store, letter)
        except Exception as exc:
            failed += 1
            results.append({"id": letter.id, "error": redact(f"{type(exc).__name__}: {exc}")})
            continue
        results.append({"id": letter.id, "message_id": message.message_id, "queue": letter.queue})
    _report("replayed", results, as_json)
    if failed:
        raise click.ClickException(f"{failed} dead letter(s) could not be replayed; they were kept")


@dlq.command("purge")
@_selection_options
@click.pass_obj
def purge_letters(
    app: AppContext,
    ids: tuple[str, ...], select_all: bool, queue: str | None, limit: int | None,
    dry_run: bool, yes: bool, as_json: bool,
) -> None:
    """Delete dead letters for good."""
    store = _store(app)
    letters = _select(store, ids, select_all, queue, limit)
    if _preview("purge", letters, dry_run, yes, as_json):
        return
    results = [{"id": letter.id} for letter in letters if store.remove(letter.id)]
    _report("purged", results, as_json)


def _preview(verb: str, letters: list[DeadLetter], dry_run: bool, yes: bool, as_json: bool) -> bool:
    """Handle the empty case, --dry-run and the confirmation; True when nothing is to be done."""
    if not letters:
        click.echo("[]" if as_json else "no dead letters selected")
        return True
    if dry_run:
        if as_json:
            click.echo(json.dumps({"dry_run": verb, "letters": [_summary(x) for x in letters]}, indent=2))
        else:
            click.echo(f"would {verb} {len(letters)} dead letter(s):")
            _table(letters)
        return True
    if not yes:
        if not as_json:
            _table(letters)
        click.confirm(f"{verb.capitalize()} {len(letters)} dead letter(s)?", abort=True, err=True)
    return False


def _report(done: str, results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for result in results:
        if "error" in result:
            click.echo(f"kept {result['id']}: {result['error']}")
        elif "message_id" in result:
            click.echo(f"{done} {result['id']} as message {result['message_id']} on {result['queue']}")
        else:
            click.echo(f"{done} {result['id']}")
    ok = sum("error" not in r for r in results)
    click.echo(f"{done} {ok} dead letter(s)")
