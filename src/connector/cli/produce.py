"""``connector produce afas`` (the poll loop), ``connector resync`` and ``connector rejects``."""

from __future__ import annotations

import json
import time

import click

from connector import runtime
from connector.cli.context import AppContext
from connector.errors import ConnectorError
from connector.redaction import mask_fields, redact, shown_value
from connector.schemas.events import SpotlerBatch
from connector.schemas.runs import PollResult

__all__ = ["conflicts", "produce", "rejects", "resync"]


def _afas_producer(ctx: AppContext, *, allow_deletions: bool = False):  # type: ignore[no-untyped-def]
    from connector.producers.afas import AfasProducer
    from connector.producers.sink import RedisSink
    from connector.schemas.events import AfasChange
    from connector.workers.actor import send
    from connector.workers.actors_afas import apply_afas_change
    from connector.workers.actors_spotler import upsert_batch

    settings = ctx.settings
    client = runtime.redis_client(settings)

    def enqueue(batch: SpotlerBatch) -> None:
        send(upsert_batch, batch)

    def enqueue_afas(change: AfasChange) -> None:
        send(apply_afas_change, change)

    return AfasProducer(
        runtime.afas_client(settings, client),
        runtime.mapping(settings),
        client,
        RedisSink(client, enqueue, enqueue_afas),
        getconnector=settings.afas_getconnector,
        spotler=runtime.spotler_client(settings, client),
        deletions_max_share=settings.deletions_max_share,
        allow_deletions=allow_deletions,
        forget_after_s=settings.forget_after_days * 86400,
        retention_s=settings.retention_days * 86400,
        consent_retention_s=settings.consent_retention_days * 86400,
    )


def _spotler_producer(ctx: AppContext):  # type: ignore[no-untyped-def]
    from connector.producers.sink import RedisSink
    from connector.producers.spotler import SpotlerProducer
    from connector.schemas.events import AfasChange
    from connector.workers.actor import send
    from connector.workers.actors_afas import apply_afas_change
    from connector.workers.actors_spotler import upsert_batch

    settings = ctx.settings
    client = runtime.redis_client(settings)

    def enqueue_afas(change: AfasChange) -> None:
        send(apply_afas_change, change)

    def enqueue_spotler(batch: SpotlerBatch) -> None:
        send(upsert_batch, batch)

    return SpotlerProducer(
        runtime.spotler_client(settings, client),
        runtime.afas_client(settings, client),
        runtime.mapping(settings),
        client,
        RedisSink(client, enqueue_spotler, enqueue_afas),
        getconnector=settings.afas_getconnector,
        restart_lookback_s=settings.spotler_restart_lookback_s,
    )


@click.group()
def produce() -> None:
    """Run a producer: poll one system and publish change events."""


@produce.command("afas")
@click.option("--once", is_flag=True, help="poll once and exit")
@click.option("--no-wait", is_flag=True, help="exit (status 3) if another producer holds the lock")
@click.pass_obj
def produce_afas(ctx: AppContext, once: bool, no_wait: bool) -> None:
    """Poll the AFAS GetConnector every POLL_INTERVAL_S and enqueue Spotler upserts."""
    _run_producer(ctx, "afas", once, no_wait)


@produce.command("spotler")
@click.option("--once", is_flag=True, help="poll once and exit")
@click.option("--no-wait", is_flag=True, help="exit (status 3) if another producer holds the lock")
@click.pass_obj
def produce_spotler(ctx: AppContext, once: bool, no_wait: bool) -> None:
    """Poll Spotler's change and bounce feeds every POLL_INTERVAL_S and enqueue AFAS writes."""
    _run_producer(ctx, "spotler", once, no_wait)


def _run_producer(ctx: AppContext, source: str, once: bool, no_wait: bool) -> None:
    from connector.alerts import AlertMonitor
    from connector.producers.loop import ProducerLock, run_loop
    from connector.state.runs import RunHistory

    try:
        producer = _afas_producer(ctx) if source == "afas" else _spotler_producer(ctx)
    except ConnectorError as exc:
        raise click.ClickException(str(exc)) from None
    history = RunHistory(producer.redis)

    def poll() -> PollResult:
        result: PollResult = producer.poll_once()
        history.record(result)
        return result

    alerts = AlertMonitor.from_settings(producer.redis, ctx.settings)
    try:
        code = run_loop(
            poll,
            ProducerLock(producer.redis, source),
            interval_s=ctx.settings.poll_interval_s,
            wait_for_lock=not no_wait,
            max_polls=1 if once else None,
            after_poll=alerts.kick if alerts is not None else None,
        )
    finally:
        if alerts is not None:
            alerts.close()
    raise SystemExit(code)


@click.command()
@click.option("--dry-run", is_flag=True,
              help="report what a resync would create, update or unsubscribe, and what differs; write nothing")
@click.option("--sample", type=click.IntRange(0), default=20, show_default=True,
              help="with --dry-run: contacts shown field by field")
@click.option("--json", "as_json", is_flag=True, help="with --dry-run: the report as JSON")
@click.option("--yes", "-y", is_flag=True,
              help="with deletions = unsubscribe: unsubscribe even more than DELETIONS_MAX_SHARE of the contacts")
@click.pass_obj
def resync(ctx: AppContext, dry_run: bool, sample: int, as_json: bool, yes: bool) -> None:
    """Walk the whole GetConnector and send only what differs from the agreed state.

    Exit status 0 when the pass completed; 1 when it failed, or when more
    contacts are gone from the GetConnector than one pass may unsubscribe
    (DELETIONS_MAX_SHARE, without --yes): then nobody was unsubscribed.
    """
    from connector.producers.afas import DeletionsHeld
    from connector.state.rejections import RejectionStore
    from connector.state.runs import RunHistory

    if dry_run:
        _dry_run(ctx, sample, as_json)
        return
    if as_json:
        raise click.UsageError("--json goes with --dry-run")
    try:
        producer = _afas_producer(ctx, allow_deletions=yes)
    except ConnectorError as exc:
        raise click.ClickException(str(exc)) from None
    started = time.monotonic()
    # AFAS cannot count a GetConnector's rows up front: the bar's length is what the
    # previous full pass read (or the contacts synced so far), stretched if exceeded.
    history = RunHistory(producer.redis)
    previous = [r.read for r in history.latest("afas", 200) if r.kind == "resync"]
    expected = previous[0] if previous else producer.agreed.count() + RejectionStore(producer.redis).count()

    def progress(result: PollResult) -> None:
        total = max(expected, result.read, 1)
        filled = int(30 * result.read / total)
        rate = result.read / max(0.001, time.monotonic() - started)
        click.echo(
            f"\r  [{'#' * filled}{'.' * (30 - filled)}] {result.read:>8,}/~{total:,}  changed {result.changed:>7,}"
            f"  unchanged {result.unchanged:>8,}  rejected {result.rejected:>6,}  ({rate:,.0f} rows/s)",
            nl=False, err=True,
        )

    try:
        result = producer.poll_once(full=True, progress=progress)
    except DeletionsHeld as exc:
        click.echo("", err=True)
        raise click.ClickException(f"resync stopped before unsubscribing: {exc}") from None
    except ConnectorError as exc:
        click.echo("", err=True)
        raise click.ClickException(f"resync failed: {exc}") from None
    click.echo("", err=True)
    history.record(result)
    click.echo(
        f"resync {result.run_id}: {result.read} rows read, {result.changed} changed "
        f"({result.enqueued_messages} messages), {result.unchanged} unchanged, "
        f"{result.rejected} rejected, {result.gone} no longer in AFAS "
        f"(deletions = {producer.mapping.deletions}) in {result.duration_s:.1f}s"
    )


def _dry_run(ctx: AppContext, sample: int, as_json: bool) -> None:
    """``resync --dry-run``: read AFAS, Spotler and the agreed state; print the plan (emails masked)."""
    import msgspec

    from connector.producers.dry_run import dry_run
    from connector.sync.dry_run import DryRunReport, render

    settings = ctx.settings

    def progress(report: DryRunReport) -> None:
        click.echo(f"\r  read {report.read:>8,} AFAS rows", nl=False, err=True)

    try:
        with runtime.afas_client(settings, ctx.redis) as afas, runtime.spotler_client(settings) as spotler:
            report = dry_run(afas, spotler, runtime.mapping(settings), ctx.redis,
                             getconnector=settings.afas_getconnector, sample=sample, progress=progress)
    except ConnectorError as exc:
        click.echo("", err=True)
        raise click.ClickException(f"resync --dry-run failed: {exc}") from None
    click.echo("", err=True)
    click.echo(msgspec.json.format(msgspec.json.encode(report)).decode() if as_json else render(report))


@click.command()
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def rejects(ctx: AppContext, limit: int, as_json: bool) -> None:
    """Rejected records: contact, field and reason (newest first); an e-mail address as id shows as <email>."""
    import msgspec

    from connector.state.rejections import RejectionStore

    store = RejectionStore(runtime.redis_client(ctx.settings))
    records = store.list(limit=limit)
    if as_json:
        click.echo(json.dumps(mask_fields(msgspec.to_builtins(records)), indent=2))
        return
    counts = store.by_reason()
    click.echo(f"{store.count()} rejected records")
    for reason, n in counts.most_common():
        click.echo(f"  {n:>6}  {redact(reason)}")
    if records:
        click.echo(f"\n{'source':<8} {'contact':<10} {'field':<16} reason")
        for r in records:
            click.echo(f"{r.source:<8} {redact(r.contact_id or '-'):<10} {r.field:<16} {redact(r.reason)}")


@click.command()
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def conflicts(ctx: AppContext, limit: int, as_json: bool) -> None:
    """Settled conflicts: contact, field, both values, the rule and the outcome (newest first).

    Values of personal fields (names, e-mail, phone, address) show as a short
    digest (``<personal 1a2b>``), equal values alike; other values as they are.
    """
    import msgspec

    from connector.state.conflicts import ConflictStore

    store = ConflictStore(runtime.redis_client(ctx.settings))
    records = store.list(limit=limit)
    if as_json:
        click.echo(json.dumps(mask_fields(msgspec.to_builtins(records)), indent=2))
        return
    click.echo(f"{store.count()} settled conflicts")
    for rule, n in store.by_rule().most_common():
        click.echo(f"  {n:>6}  {rule}")
    if records:
        click.echo(f"\n{'contact':<10} {'field':<16} {'rule':<14} {'winner':<8} afas → spotler")
        for r in records:
            c = r.conflict
            click.echo(f"{redact(c.contact_id):<10} {c.field:<16} {c.rule:<14} {c.winner:<8} "
                       f"{shown_value(c.field, c.afas_value)} → {shown_value(c.field, c.spotler_value)}")
