"""``connector migrate``: pack the agreed states an earlier version stored (see ``connector.state.migrate``)."""

from __future__ import annotations

import json

import click
import msgspec

from connector.cli.context import AppContext

__all__ = ["migrate"]


@click.command()
@click.option("--dry-run", is_flag=True, help="only count the states still in the old form")
@click.option("--json", "as_json", is_flag=True, help="the report as JSON")
@click.pass_obj
def migrate(app: AppContext, dry_run: bool, as_json: bool) -> None:
    """Rewrite every agreed state kept in an earlier version's form in the packed layout.

    Run it once no process of the earlier version is left. Safe while the
    link runs (each contact in one atomic step), and idempotent: a second run
    finds nothing to do. The link reads the old form meanwhile, so this only
    frees memory sooner. Reports counts, never contacts' data.
    Exit 1 when old states are left (an earlier version's process still
    writing them): stop it, then run this again.
    """
    from connector.state.migrate import MigrateReport, old_states
    from connector.state.migrate import migrate as run

    if dry_run:
        left = old_states(app.redis)
        report = MigrateReport(left=left)
    else:
        report = run(app.redis)
    if as_json:
        click.echo(json.dumps({**msgspec.to_builtins(report), "dry_run": dry_run}, indent=2))
    elif dry_run:
        click.echo(f"{report.left:,} key(s) of the old form (states, or markers of states packed since); "
                   "nothing changed (--dry-run)")
    else:
        click.echo(
            f"migrated {report.migrated:,} agreed state(s) to the packed layout in {report.passes} pass(es)"
            f" ({report.retired:,} marker(s) of states the link had packed and {report.forgotten:,} key(s) of"
            f" forgotten contacts deleted, {report.vanished:,} gone meanwhile); {report.left:,} left in the old form"
        )
    if not dry_run and not report.done:
        raise SystemExit(1)
