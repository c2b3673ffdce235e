"""Entry point: ``connector <command>``."""

from __future__ import annotations

import logging
import sys

import click

from connector.cli.context import AppContext
from connector.cli.sandbox import sandbox
from connector.errors import ConfigError
from connector.settings import Settings

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
    ctx.obj = AppContext(settings=settings)


cli.add_command(sandbox)


def main() -> None:
    cli()
