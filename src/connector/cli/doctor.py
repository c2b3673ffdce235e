"""``connector doctor``: the preflight, and the Procfile's release step (``--release``)."""

from __future__ import annotations

import click

from connector.cli.context import AppContext
from connector.doctor import DEFAULT_SAMPLE, exit_code, render_json, render_release, render_table, run_doctor

__all__ = ["doctor"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {check, status, detail, fix}.")
@click.option("--release", is_flag=True, help="Terse output for a release phase: failures, warnings, verdict.")
@click.option(
    "--sample",
    type=click.IntRange(min=0),
    default=DEFAULT_SAMPLE,
    show_default=True,
    help="GetConnector rows to decode and judge (0: skip).",
)
@click.pass_obj
def doctor(app: AppContext, as_json: bool, release: bool, sample: int) -> None:
    """Check settings, mapping, AFAS token and GetConnector, Spotler key and properties.

    Exits 1 when anything required fails (warnings do not fail), so a release
    phase running "connector doctor --release" stops a broken deploy.
    """
    checks = run_doctor(app.settings, sample=sample)
    if as_json:
        click.echo(render_json(checks))
    elif release:
        click.echo(render_release(checks))
    else:
        click.echo(render_table(checks))
    raise SystemExit(exit_code(checks))
