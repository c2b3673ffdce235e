"""``connector trace CONTACT_ID [--json]``: what happened to this contact (``connector.status.trace``)."""

from __future__ import annotations

import click

from connector.cli.context import AppContext
from connector.status.trace import as_json, build_trace, live_sides, text_report

__all__ = ["trace"]


@click.command()
@click.argument("contact_id")
@click.option("--json", "as_json_", is_flag=True, help="the trace as JSON")
@click.pass_obj
def trace(app: AppContext, contact_id: str, as_json_: bool) -> None:
    """The contact's journal as a timeline, both sides' values read live, the agreed state and a verdict.

    Values are masked by the redaction policy (a personal value shows as a
    short digest; equal values show the same one). Reading a side needs its
    credentials; without them the trace says so and shows the rest.
    """
    from connector.workers.broker import QUEUES

    afas, spotler = live_sides(app.settings, app.redis)
    result = build_trace(app.redis, contact_id, afas=afas, spotler=spotler, queues=tuple(QUEUES))
    click.echo(as_json(result) if as_json_ else text_report(result))
