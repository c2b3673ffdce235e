"""``connector status`` (every figure, exit status for monitoring) and ``connector runs`` (poll history)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import msgspec
import redis

from connector.cli.context import AppContext
from connector.schemas.runs import PollResult
from connector.status.report import StatusReport

__all__ = ["runs", "status"]


def _when(epoch: float | None) -> str:
    return "—" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def _echo_report(r: StatusReport) -> None:
    click.echo(f"connector status at {_when(r.generated_at)}")
    click.echo(f"\n{'queue':<10}{'ready':>9}{'delayed':>9}{'in flight':>11}{'dead':>7}{'broker DLQ':>12}  oldest")
    for q in r.queues:
        click.echo(f"{q.name:<10}{q.ready:>9,}{q.delayed:>9,}{q.in_flight:>11,}{q.dead_letters:>7,}"
                   f"{q.broker_dead:>12,}  {_age(q.oldest_age_s)}")
    click.echo(f"\n{'producer':<10}{'process':<9}{'lag':>9}  last good poll ended     cursor")
    for p in r.producers:
        lag = _age(p.lag_s) if p.lag_s is not None else "never"
        click.echo(f"{p.source:<10}{'running' if p.running else 'stopped':<9}{lag:>9}  "
                   f"{_when(p.last_poll_end):<24} {p.cursor or '—'}")
    lim = r.limits
    click.echo(f"\nrate limits: Spotler {lim.spotler_rate_per_s:g}/s (slots booked {lim.spotler_booked_ahead_s:.1f}s"
               f" ahead), AFAS {lim.afas_in_use}/{lim.afas_limit} calls in flight")
    if r.events is not None and (r.events.enabled or r.events.outbox):
        click.echo(f"events out: {'on' if r.events.enabled else 'off (EVENTS_URL unset)'}, "
                   f"{r.events.outbox:,} waiting in the outbox, {r.events.trimmed:,} dropped at its bound")
    if r.counters:
        click.echo("counters: " + ", ".join(f"{name} {n:,}" for name, n in r.counters.items()))
    for title, total, counts in (
        ("rejected records", r.rejections.total, r.rejections.by_reason),
        ("settled conflicts", r.conflicts.total, r.conflicts.by_rule),
        ("dead letters", r.dead_letters.total, r.dead_letters.by_queue),
    ):
        click.echo(f"\n{title}: {total:,}")
        for key, n in counts.items():
            click.echo(f"  {n:>7,}  {key}")
    click.echo("")
    for alert in r.alerts:
        click.echo(f"ALERT (exit {alert.exit_code}): {alert.message}")
    click.echo("status: " + ("ok" if not r.alerts else f"exit {r.exit_code}"))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print the whole report as JSON")
@click.pass_obj
def status(app: AppContext, as_json: bool) -> None:
    """Queues, producers, runs, rejections, conflicts, dead letters, limits and counters.

    Exit status: 0 healthy; 2 dead letters are present; 3 a producer's last
    successful poll is older than STATUS_MAX_LAG_S or it never polled (3 wins
    when both hold). Every crossed threshold is named in the output.
    """
    from connector.status.collect import collect

    try:
        report = collect(app.redis, app.settings)
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis is unavailable ({type(exc).__name__})") from None
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
    else:
        _echo_report(report)
    raise SystemExit(report.exit_code)


@click.command()
@click.option("--source", type=click.Choice(["afas", "spotler"]), help="one producer only (default: both)")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="runs to show")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def runs(app: AppContext, source: str | None, limit: int, as_json: bool) -> None:
    """The producers' poll history, newest first: read, changed, unchanged, rejected, enqueued, duration.

    ``written`` and ``superseded`` are what the workers made of the run's
    messages so far: changes written, and fields not written because a newer
    change had been applied (or was on its way) by the time they ran.
    """
    from connector.state.runs import RunHistory

    history = RunHistory(app.redis)
    try:
        found: list[PollResult] = [run for s in ([source] if source else ["afas", "spotler"])
                                   for run in history.latest(s, limit)]
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis is unavailable ({type(exc).__name__})") from None
    found = sorted(found, key=lambda run: run.started_at, reverse=True)[:limit]
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(found), indent=2).decode())
        return
    if not found:
        click.echo("no runs recorded")
        return
    click.echo(f"{'source':<8} {'run':<12} {'started':<23} {'kind':<7}{'read':>9}{'changed':>9}{'unchanged':>10}"
               f"{'rejected':>9}{'enqueued':>9}{'written':>9}{'superseded':>11}{'duration':>10}")
    for run in found:
        click.echo(f"{run.source:<8} {run.run_id:<12} {_when(run.started_at):<23} {run.kind:<7}{run.read:>9,}"
                   f"{run.changed:>9,}{run.unchanged:>10,}{run.rejected:>9,}{run.enqueued_messages:>9,}"
                   f"{run.written:>9,}{run.superseded:>11,}{run.duration_s:>9.2f}s")
