"""Entry point: ``connector <command>``."""

from __future__ import annotations

import logging
import sys

import click

from connector.cli.consent import consent
from connector.cli.context import AppContext
from connector.cli.demo import demo
from connector.cli.dlq import dlq
from connector.cli.doctor import doctor
from connector.cli.events import publish_events
from connector.cli.forget import forget
from connector.cli.migrate import migrate
from connector.cli.produce import conflicts, produce, rejects, resync
from connector.cli.sandbox import sandbox
from connector.cli.status import runs, status
from connector.cli.testplan import testplan
from connector.cli.trace import trace
from connector.cli.web import web
from connector.cli.work import work
from connector.errors import ConfigError
from connector.settings import Settings
from connector.workers.launcher import install_log_redaction

__all__ = ["cli", "main"]


@click.group()
@click.version_option(package_name="afas-spotler-connector")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Two-way sync between AFAS Profit and Spotler Mail+."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # One line per event of our own; the HTTP library's per-request lines are noise (and carry URLs).
    for noisy in ("httpx", "httpcore", "oauthlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_log_redaction()
    ctx.obj = AppContext(settings=settings)


for command in (conflicts, consent, demo, dlq, doctor, forget, migrate, produce, publish_events, rejects, resync, runs,
                sandbox, status, testplan, trace, web, work):
    cli.add_command(command)


def main() -> None:
    try:
        cli()
    except ConfigError as exc:  # raised past click by a command's set-up (no Redis, an unreadable mapping)
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None
