"""``connector demo``: the whole link on this machine, with nothing configured.

Starts an embedded Redis (or uses REDIS_URL), both sandboxes seeded with a few
thousand contacts, the AFAS producer and two Spotler workers as separate
processes; shows the initial sync, makes edits in the AFAS sandbox and shows
each one arriving in Spotler, then prints a summary and exits 0.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click
import redis

from connector.cli.context import AppContext
from connector.stack import Stack, wait_until
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
@click.pass_obj
def demo(ctx: AppContext, contacts: int, workers: int, keep: bool) -> None:
    """Run the sync end to end against the sandboxes."""
    data_dir = (ctx.settings.data_dir / "demo").resolve()
    if data_dir.exists():
        shutil.rmtree(data_dir / "logs", ignore_errors=True)
    started = time.monotonic()
    stack = Stack(data_dir, redis_url=ctx.settings.redis_url, contacts=contacts, env={"POLL_INTERVAL_S": "2"})
    try:
        _run(stack, workers, keep)
    finally:
        stack.close()
    _say(f"\ndemo finished in {time.monotonic() - started:.0f}s; logs in {data_dir / 'logs'}")


def _run(stack: Stack, workers: int, keep: bool) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    for key in client.scan_iter(match="connector:*", count=1000):
        client.delete(key)
    for key in client.scan_iter(match="dramatiq:*", count=1000):
        client.delete(key)
    embedded = stack.redis_url.startswith("unix://")
    _say(f"redis     {'embedded, in ' + str(Path(stack.data_dir) / 'redis') if embedded else 'REDIS_URL'}")
    _say(f"sandboxes starting: AFAS with {stack.contacts} contacts, Spotler empty ...")
    stack.start_sandboxes()
    env = stack.env()
    _say(f"AFAS      {env['AFAS_BASE_URL']}")
    _say(f"Spotler   {env['SPOTLER_BASE_URL']}")
    for n in range(workers):
        stack.start(f"spotler-worker-{n + 1}", "work", "--queue", "spotler", "--threads", "4")
    stack.start("afas-producer", "produce", "afas")
    _say(f"processes afas-producer, {workers} x spotler-worker (separate OS processes)\n")

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

    _show_edits(stack, client)

    rejections = RejectionStore(client)
    last = history.last("afas")
    _say("\nsummary")
    _say(f"  synced to Spotler      {synced()}")
    _say(f"  unchanged (last poll)  {last.unchanged if last else 0}")
    _say(f"  rejected               {rejections.count()}")
    for reason, n in rejections.by_reason().most_common():
        _say(f"    {n:>5}  {reason}")
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


def _show_edits(stack: Stack, client: redis.Redis) -> None:
    contact = _first_synced(stack)
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


def _first_synced(stack: Stack) -> dict[str, object]:
    for cid in range(1, 200):
        try:
            row: dict[str, object] = stack.afas("GET", f"contacts/{cid}")
        except Exception:  # noqa: S112 - ids are not dense; try the next one
            continue
        if row and stack.spotler("GET", f"contacts/{cid}"):
            return row
    raise click.ClickException("no synced contact found among the first ids")


def _dead_letters(client: redis.Redis) -> int:
    from connector.workers.dead_letters import DeadLetterStore

    return DeadLetterStore(client).count()
